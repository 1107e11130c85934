"""The application: service wiring, command line, demo and embedded servers. It plugs the
PostgreSQL store into the ports of ingest, the notifier and the domain."""
