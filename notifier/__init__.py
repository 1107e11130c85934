"""Customer notifications: outbox, dispatcher, channels (Twilio SMS, Zalo ZNS, Web Push,
signed webhook, console) with per-customer channel order and fallback, templates (vi, en),
preferences, the Twilio webhooks router and the ZNS receipt webhook.

The notifier imports nothing of gridwatch but its core: what it needs from a database is
the ports in ``notifier._ports`` (exported here), which the application fills with
``gridwatch.store``'s PostgreSQL implementation."""

from notifier._channel import Channel, Notice, RateLimiter
from notifier._console import ConsoleChannel, print_demo, print_preview
from notifier._costs import Prices, cost_report, format_report, sms_churn_lines
from notifier._dispatcher import Dispatcher, DispatcherConfig, DispatchStats, backoff_s
from notifier._errors import (
    EventError,
    NotifierError,
    OutcomeUnknownError,
    PermanentSendError,
    PhoneNumberError,
    SendError,
    TemplateError,
    TransientSendError,
)
from notifier._events import LANGUAGES, NOTICE_KINDS, REPLY_KINDS, NoticeKind, OutageChange
from notifier._outbox import EnqueueResult, enqueue_for_outage_change, idempotency_key, message_ref
from notifier._phone import is_e164, mask_name, mask_phone, validate_phone_e164
from notifier._policy import NotifyPolicy, quiet_release_s
from notifier._ports import (
    ChannelDay,
    ClaimedNotification,
    CustomerReplies,
    DispatchQueue,
    FallbackStats,
    HeldNotification,
    NewNotification,
    NotifyTarget,
    OutageNoticeState,
    OutageReach,
    OutboxWriter,
    PushSubscriptions,
    SmsKind,
    Transactions,
    ZnsReceipts,
)
from notifier._push import VapidKeys, WebPushChannel, generate_vapid_keys
from notifier._render import etr_window_text, preview_change, render_notice
from notifier._sms_text import SmsLength, is_gsm7, sms_length, strip_diacritics
from notifier._templates import Rendered, Templates, load_templates
from notifier._twilio import TwilioConfig, TwilioSmsChannel
from notifier._webhook import SignedWebhookChannel, sign_webhook, verify_webhook_signature
from notifier._webhooks_router import (
    WebhooksConfig,
    classify_keyword,
    create_webhooks_router,
    customer_link_token,
)
from notifier._zns import (
    MemoryTokenStore,
    ZnsChannel,
    ZnsConfig,
    ZnsToken,
    ZnsTokenStore,
    zns_channel_from_settings,
)
from notifier._zns_webhook import ZnsWebhookConfig, create_zns_webhook_router

__all__ = [
    "LANGUAGES",
    "NOTICE_KINDS",
    "REPLY_KINDS",
    "Channel",
    "ChannelDay",
    "ClaimedNotification",
    "ConsoleChannel",
    "CustomerReplies",
    "DispatchQueue",
    "DispatchStats",
    "Dispatcher",
    "DispatcherConfig",
    "EnqueueResult",
    "EventError",
    "FallbackStats",
    "HeldNotification",
    "MemoryTokenStore",
    "NewNotification",
    "Notice",
    "NoticeKind",
    "NotifierError",
    "NotifyPolicy",
    "NotifyTarget",
    "OutageChange",
    "OutageNoticeState",
    "OutageReach",
    "OutboxWriter",
    "OutcomeUnknownError",
    "PermanentSendError",
    "PhoneNumberError",
    "Prices",
    "PushSubscriptions",
    "RateLimiter",
    "Rendered",
    "SendError",
    "SignedWebhookChannel",
    "SmsKind",
    "SmsLength",
    "TemplateError",
    "Templates",
    "Transactions",
    "TransientSendError",
    "TwilioConfig",
    "TwilioSmsChannel",
    "VapidKeys",
    "WebPushChannel",
    "WebhooksConfig",
    "ZnsChannel",
    "ZnsConfig",
    "ZnsReceipts",
    "ZnsToken",
    "ZnsTokenStore",
    "ZnsWebhookConfig",
    "backoff_s",
    "classify_keyword",
    "cost_report",
    "create_webhooks_router",
    "create_zns_webhook_router",
    "customer_link_token",
    "enqueue_for_outage_change",
    "etr_window_text",
    "format_report",
    "generate_vapid_keys",
    "idempotency_key",
    "is_e164",
    "is_gsm7",
    "load_templates",
    "mask_name",
    "mask_phone",
    "message_ref",
    "preview_change",
    "print_demo",
    "print_preview",
    "quiet_release_s",
    "render_notice",
    "sign_webhook",
    "sms_churn_lines",
    "sms_length",
    "strip_diacritics",
    "validate_phone_e164",
    "verify_webhook_signature",
    "zns_channel_from_settings",
]
