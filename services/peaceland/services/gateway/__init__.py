"""The ingest gateway: drones POST their reports; a 202 means Kafka has them durably.

A report is accepted only once every in-sync replica of the force's reports topic has
acknowledged it (acks=all, idempotent producer). Anything else is a clear refusal: a 4xx
naming each rejected report and why, or a 503 when Kafka is unavailable, so the drone keeps
the report and sends it again (its report id makes the resend harmless).
"""
