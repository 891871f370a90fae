"""The outputs: MQTT (state topics, Home Assistant discovery, commands), the internal broker,
REST (with the dashboard, OpenAPI and Prometheus metrics) and InfluxDB.

Each sees inverters only as :class:`givtcp_async.ports.InverterView` and other services only
through :class:`givtcp_async.ports.Links`; only the daemon imports the sinks.

May import: ports, config (its own section), control (catalogue, results), snapshot, registers,
quality, backoff, errors; never the coordinator or the daemon.
"""
