"""Alerts: a citizen with a low score seen by a drone, and their versioned JSON wire format.

An alert is opened by one sighting and stays open for the force's dedup window; sightings of
the same citizen in that window update it (where and when the citizen was last seen)
instead of raising another. The alerts topic carries one event per sighting: ``raised``
once per alert, then ``updated``. Every event carries what an officer needs to act (where
the drone is, who was seen, the score) and the alert's deterministic ``alert_id``, derived
from the force, the citizen and the report that opened it, so that reprocessing a report
yields the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.reports import CitizenName, DroneId, Latitude, Longitude, Score

ALERT_VERSION: Final = 1

# Fixed namespace for alert ids (uuid5): the same inputs give the same id on every machine.
_ALERT_NAMESPACE: Final = uuid.UUID("6f0d3f5e-3c1a-4b8e-9a57-2f1e0c9b7d41")


AlertEventKind = Literal["raised", "updated"]


class Alert(BaseModel):
    """One event of an alert: its raising, or a later sighting that updates it.

    ``drone_id``, ``report_id``, the position, ``score`` and ``reported_at`` describe the
    sighting of this event; ``opened_at`` is the report time of the sighting that raised the
    alert (equal to ``reported_at`` on the ``raised`` event); ``raised_at`` is when the
    platform emitted this event.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1] = ALERT_VERSION
    event: AlertEventKind
    alert_id: uuid.UUID
    force_id: Annotated[str, Field(min_length=1, max_length=63)]
    citizen: CitizenName
    score: Score
    drone_id: DroneId
    report_id: uuid.UUID
    latitude: Latitude
    longitude: Longitude
    reported_at: AwareDatetime
    opened_at: AwareDatetime
    raised_at: AwareDatetime


def alert_id_for(force_id: str, citizen: str, opened_by_report: uuid.UUID) -> uuid.UUID:
    """The id of the alert that ``opened_by_report`` opens for ``citizen`` in ``force_id``.

    Deterministic, so that reprocessing the same report after a crash yields the same id.
    """
    return uuid.uuid5(_ALERT_NAMESPACE, f"{force_id}\x1f{citizen}\x1f{opened_by_report}")


def decode_alert(data: bytes | str) -> Alert:
    """Decode and validate one alert from its JSON wire format."""
    try:
        return Alert.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidRecordError.from_validation("alert", exc) from None


def encode_alert(alert: Alert) -> bytes:
    """The JSON wire format of an alert."""
    return alert.model_dump_json().encode()


class AlertView(BaseModel):
    """An alert as a reader of the alerts topic knows it: the readers' contract.

    Events of one alert are keyed by its citizen, so they share a partition; but replicas of
    the alerter commit their transactions independently, so an ``updated`` event may come
    before the ``raised`` event of its alert (one replica raised it, another saw the citizen
    again and committed first). A reader applies each event with :meth:`apply`, in whatever
    order they come, and always ends with the same view:

    - the alert exists from its first event, whatever its kind (every event carries the
      alert id, the citizen and ``opened_at``);
    - ``raised`` is the opening sighting, from the one ``raised`` event (None until it
      comes);
    - ``latest`` is the sighting taken last (greatest ``reported_at``, then report id, then
      kind and emission time): where the citizen was last seen;
    - ``sightings`` counts events, each exactly once: one per sighting, and one more for
      each copy of a report a drone sent again.
    """

    model_config = ConfigDict(frozen=True)

    alert_id: uuid.UUID
    force_id: str
    citizen: str
    opened_at: datetime
    raised: Alert | None
    latest: Alert
    sightings: int

    @classmethod
    def first(cls, event: Alert) -> AlertView:
        return cls(
            alert_id=event.alert_id,
            force_id=event.force_id,
            citizen=event.citizen,
            opened_at=event.opened_at,
            raised=event if event.event == "raised" else None,
            latest=event,
            sightings=1,
        )

    def apply(self, event: Alert) -> AlertView:
        """This view with ``event`` applied (commutative: any order gives the same view)."""
        if event.alert_id != self.alert_id:
            raise ValueError(f"event of alert {event.alert_id} applied to {self.alert_id}")
        later = _order(event) > _order(self.latest)
        return self.model_copy(
            update={
                "raised": event if event.event == "raised" else self.raised,
                "latest": event if later else self.latest,
                "sightings": self.sightings + 1,
            }
        )


def _order(event: Alert) -> tuple[datetime, str, bool, datetime]:
    """Which of two events saw the citizen last: report time, then report id; a drone's
    resend of one report gives two events of one sighting, ordered by kind then emission,
    so that the order of arrival never matters."""
    return (event.reported_at, str(event.report_id), event.event == "updated", event.raised_at)


def fold(views: dict[uuid.UUID, AlertView], event: Alert) -> AlertView:
    """Apply ``event`` to the views by alert id (a reader's whole state); returns its view."""
    current = views.get(event.alert_id)
    view = AlertView.first(event) if current is None else current.apply(event)
    views[event.alert_id] = view
    return view
