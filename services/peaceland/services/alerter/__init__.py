"""The alerting consumer: a low score in a report becomes an alert within milliseconds.

Exactly once, end to end: the open-alert state lives in Cassandra, written with lightweight
transactions (one alert per citizen per window, whichever replica sees the sighting), and the
alert events are produced in a Kafka transaction together with the consumed offsets, so a
crash or a redelivery never shows an event twice.
"""
