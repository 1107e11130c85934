"""The operator dashboard (``/dashboard/``) and the customer status page (``/status/``):
static files (plain ES modules, no build step) served by gridwatch itself."""

from gridwatch.dashboard._router import (
    DASHBOARD_PATH,
    STATUS_PATH,
    dashboard_files,
    dashboard_router,
    status_files,
)

__all__ = [
    "DASHBOARD_PATH",
    "STATUS_PATH",
    "dashboard_files",
    "dashboard_router",
    "status_files",
]
