"""A synthetic drone fleet over a city, deterministic from a seed.

Drones fly between random waypoints inside the city at a plausible speed and report once a
simulated minute. Each report sees a few citizens of a synthetic population and hears a few
words. A configurable share of reports contains a citizen with a low score; the simulator
knows exactly which ones (its ground truth), so a benchmark can check every alert.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from peaceland.tenants.reports import Citizen, Report

_FIRST: Final = (
    "Alice",
    "Bruno",
    "Chloé",
    "Djamel",
    "Élodie",
    "Fatou",
    "Gaspard",
    "Hugo",
    "Inès",
    "Jules",
    "Karim",
    "Léa",
    "Manon",
    "Nathan",
    "Océane",
    "Paul",
    "Quentin",
    "Rose",
    "Sofiane",
    "Théo",
    "Ulysse",
    "Victor",
    "Wassim",
    "Yasmine",
    "Zoé",
    "Amir",
    "Baptiste",
    "Camille",
    "Diane",
    "Emma",
    "Farid",
    "Gabriel",
    "Hélène",
    "Ibrahim",
    "Jade",
    "Louis",
    "Mila",
    "Noah",
    "Lina",
)
_LAST: Final = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guerin",
    "Haddad",
    "Nguyen",
    "Diallo",
    "Benali",
    "Traoré",
)
VOCABULARY: Final = (
    "bonjour",
    "merci",
    "police",
    "foule",
    "rue",
    "place",
    "calme",
    "vite",
    "attention",
    "manifestation",
    "grève",
    "marché",
    "métro",
    "bus",
    "voiture",
    "vélo",
    "école",
    "travail",
    "musique",
    "match",
    "soleil",
    "pluie",
    "café",
    "boulangerie",
    "rendez-vous",
    "demain",
    "aujourd'hui",
    "ici",
    "là-bas",
    "pourquoi",
    "d'accord",
    "attends",
    "regarde",
    "allez",
    "ensemble",
    "tranquille",
    "bruit",
    "sirène",
    "cortège",
    "banderole",
    "slogan",
    "barrage",
    "rassemblement",
    "pont",
    "gare",
    "quartier",
    "voisin",
    "famille",
    "enfant",
    "chien",
)

#: Speed of a patrolling drone, metres per second.
DRONE_SPEED: Final = 12.0
_METRES_PER_DEGREE: Final = 111_320.0


@dataclass(frozen=True, slots=True)
class City:
    name: str
    latitude: float
    longitude: float
    radius_m: float


PARIS: Final = City("Paris", 48.8566, 2.3522, 6_000.0)


@dataclass(slots=True)
class _Drone:
    drone_id: str
    latitude: float
    longitude: float
    target: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Population:
    """Citizens with their scores: most ordinary, a few below the alert threshold."""

    ordinary: tuple[Citizen, ...]
    low: tuple[Citizen, ...]


def drone_ids(count: int) -> list[str]:
    """The ids of a fleet of ``count`` drones: the same for every seed."""
    return [f"drone-{i:04d}" for i in range(count)]


@dataclass(slots=True)
class Fleet:
    """A force's drones and the citizens they may see, all drawn from ``seed``.

    ``low_score_share`` is the share of reports that contain one citizen whose score is
    below ``threshold``; every other citizen seen scores at or above it.
    """

    drones: int = 100
    seed: int = 1
    city: City = PARIS
    low_score_share: float = 0.01
    threshold: float = 20.0
    citizens: int = 50_000
    low_citizens: int = 200
    max_citizens_seen: int = 8
    max_words_heard: int = 40
    rng: random.Random = field(init=False)
    population: Population = field(init=False)
    _fleet: list[_Drone] = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.low_score_share <= 1:
            raise ValueError("low_score_share is a share, between 0 and 1")
        self.rng = random.Random(self.seed)
        self.population = self._population()
        self._fleet = [
            _Drone(drone_id, *self._random_point(), target=self._random_point())
            for drone_id in drone_ids(self.drones)
        ]

    @property
    def drone_ids(self) -> list[str]:
        return [drone.drone_id for drone in self._fleet]

    def reports(self, start: datetime, minutes: int | None = None) -> Iterator[Report]:
        """Every drone's report, minute after minute from ``start`` (forever when None)."""
        minute = 0
        while minutes is None or minute < minutes:
            at = start + timedelta(minutes=minute)
            for drone in self._fleet:
                self._fly(drone, 60.0)
                yield self._report(drone, at)
            minute += 1

    def live_reports(self) -> Iterator[Report]:
        """Reports stamped with the real clock, round after round, for as long as asked."""
        while True:
            # Each report falls within the minute before it is made, never in the future.
            at = datetime.now(UTC) - timedelta(minutes=1)
            for drone in self._fleet:
                self._fly(drone, 60.0)
                yield self._report(drone, at)

    def _report(self, drone: _Drone, at: datetime) -> Report:
        rng = self.rng
        seen = rng.sample(self.population.ordinary, rng.randint(0, self.max_citizens_seen))
        if rng.random() < self.low_score_share:
            seen.insert(rng.randint(0, len(seen)), rng.choice(self.population.low))
        return Report(
            report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            drone_id=drone.drone_id,
            timestamp=at + timedelta(milliseconds=rng.randint(0, 59_999)),
            latitude=round(drone.latitude, 6),
            longitude=round(drone.longitude, 6),
            citizens=seen,
            words=[rng.choice(VOCABULARY) for _ in range(rng.randint(0, self.max_words_heard))],
        )

    def _population(self) -> Population:
        rng = self.rng
        names = [f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {i:05d}" for i in range(self.citizens)]
        low = tuple(
            Citizen(name=name, score=round(rng.uniform(0, self.threshold - 0.01), 2))
            for name in names[: self.low_citizens]
        )
        ordinary = tuple(
            Citizen(name=name, score=round(rng.uniform(self.threshold, 100.0), 2))
            for name in names[self.low_citizens :]
        )
        return Population(ordinary, low)

    def _random_point(self) -> tuple[float, float]:
        # Uniform over the disc of the city.
        distance = self.city.radius_m * math.sqrt(self.rng.random())
        bearing = self.rng.uniform(0, 2 * math.pi)
        return _offset(self.city.latitude, self.city.longitude, distance, bearing)

    def _fly(self, drone: _Drone, seconds: float) -> None:
        """Move towards the waypoint; pick a new one on arrival."""
        north, east = _metres_between(drone.latitude, drone.longitude, *drone.target)
        remaining = math.hypot(north, east)
        step = DRONE_SPEED * seconds
        if remaining <= step:
            drone.latitude, drone.longitude = drone.target
            drone.target = self._random_point()
            return
        drone.latitude, drone.longitude = _offset(
            drone.latitude, drone.longitude, step, math.atan2(east, north)
        )


def _offset(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    d_lat = metres * math.cos(bearing) / _METRES_PER_DEGREE
    d_lon = metres * math.sin(bearing) / (_METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return lat + d_lat, lon + d_lon


def _metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    north = (lat2 - lat1) * _METRES_PER_DEGREE
    east = (lon2 - lon1) * _METRES_PER_DEGREE * math.cos(math.radians(lat1))
    return north, east
