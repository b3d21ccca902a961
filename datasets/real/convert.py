#!/usr/bin/env python3
"""Public research rating logs -> changeling contract datasets with planted
compromise episodes.

Reads local copies of the Ciao rating log (Tang et al.) and of MovieLens 100k
(GroupLens), turns every rating into a `like` event, splits the accounts into
two halves by a stable hash of the account id, and plants compromise episodes
and benign look-alikes of our own into each half, labelled as ground truth.
See datasets/README.md ("Real logs with planted episodes") for the origin of
the files, the licence situation and the planting model.

The inputs and everything written from them are research data without a
redistribution licence: the output directory must lie outside the
repository, and this script refuses one inside it.

Usage (through datasets/real/make.sh, which sets up the venv):

    convert.py ciao --ratings ciao_rating_with_timestamp.mat \
        --catalog catalog_ciao.txt --trust ciao.zip --out /work/data
    convert.py movielens --dir ml-100k --out /work/data

Determinism: every random draw comes from Python's `random.Random` (Mersenne
Twister, stable across Python versions) through `Rng.unit()`, seeded by a
SHA-256 of the seed and a purpose string, so the same inputs and seed give
the same bytes (zstd output also depends on the pinned `zstandard`).
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import io
import json
import math
import os
import random
import re
import sys
import time
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field

MINUTE = 60
HOUR = 3600
DAY = 86400

# ---------------------------------------------------------------- randomness


class Rng:
    """Deterministic draws built only on `random.Random.random()`."""

    def __init__(self, *parts: object) -> None:
        digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
        self._r = random.Random(int.from_bytes(digest[:16], "little"))

    def unit(self) -> float:
        return self._r.random()

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def integer(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi], both inclusive."""
        return lo + min(int(self.unit() * (hi - lo + 1)), hi - lo)

    def chance(self, p: float) -> bool:
        return self.unit() < p

    def normal(self) -> float:
        u1 = max(self.unit(), 1e-300)
        u2 = self.unit()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def log_uniform(self, lo: float, hi: float) -> float:
        return math.exp(self.uniform(math.log(lo), math.log(hi)))

    def shuffle(self, xs: list) -> None:
        for i in range(len(xs) - 1, 0, -1):
            j = self.integer(0, i)
            xs[i], xs[j] = xs[j], xs[i]

    def pick(self, xs: list):
        return xs[self.integer(0, len(xs) - 1)]

    def weighted_sample(self, xs: list, weights: list[float], k: int) -> list:
        """k distinct elements, each draw proportional to weight (without
        replacement). Fewer when fewer have a positive weight."""
        chosen: list = []
        ws = list(weights)
        for _ in range(k):
            total = sum(ws)
            if total <= 0:
                break
            x = self.unit() * total
            acc = 0.0
            idx = len(ws) - 1
            for i, w in enumerate(ws):
                acc += w
                if x < acc and w > 0:
                    idx = i
                    break
            while ws[idx] <= 0:  # float edge: fall back to the last positive
                idx -= 1
            chosen.append(xs[idx])
            ws[idx] = 0.0
        return chosen


class CumulativeSampler:
    """Weighted draws without replacement from a large, fixed pool by
    rejection of repeats (the draws per episode are few, pools large)."""

    def __init__(self, xs: list, weights: list[float]) -> None:
        self.xs = xs
        self.cum: list[float] = []
        acc = 0.0
        for w in weights:
            acc += w
            self.cum.append(acc)

    def sample(self, rng: Rng, k: int, exclude: set) -> list:
        out: list = []
        seen = set(exclude)
        available = sum(1 for x in self.xs if x not in seen)
        k = min(k, available)
        tries = 0
        total = self.cum[-1] if self.cum else 0.0
        while len(out) < k and total > 0:
            tries += 1
            i = bisect.bisect_right(self.cum, rng.unit() * total)
            i = min(i, len(self.xs) - 1)
            x = self.xs[i]
            if x in seen:
                if tries > 50 * (k + 10):  # heavily excluded pool: walk it
                    rest = [y for y in self.xs if y not in seen]
                    rng.shuffle(rest)
                    out.extend(rest[: k - len(out)])
                    break
                continue
            seen.add(x)
            out.append(x)
        return out


# ---------------------------------------------------------------- time models

# Gaps between successive actions in one sitting: log-normal, median 2.5 min,
# clipped to 30 s .. 15 min. Used for real Ciao ratings spread over a day and
# for every planted session, so that gaps never tell planted from real.
GAP_MEDIAN = 150.0
GAP_SIGMA = 0.6
GAP_MIN = 30.0
GAP_MAX = 15 * MINUTE
# Within a day a user sometimes takes a break and comes back: with this
# probability a gap is a break of 30 min .. 3 h instead.
BREAK_P = 0.1
BREAK_MIN = 30 * MINUTE
BREAK_MAX = 3 * HOUR


# Successive ratings of one user closer than this are one sitting (for the
# empirical gaps of sources with exact times).
SITTING_GAP = 30 * MINUTE


def short_gap(rng: Rng) -> float:
    g = GAP_MEDIAN * math.exp(GAP_SIGMA * rng.normal())
    return min(max(g, GAP_MIN), GAP_MAX)


def session_gaps(rng: Rng, n: int) -> list[float]:
    """Gaps between n actions of one sitting (n - 1 short gaps)."""
    return [short_gap(rng) for _ in range(max(n - 1, 0))]


def offsets(gaps: list[float]) -> list[float]:
    out = [0.0]
    for g in gaps:
        out.append(out[-1] + g)
    return out


class DayModel:
    """Sources whose times are calendar days (Ciao): each day's actions are
    placed in the local waking hours of that day (07:00 to 23:30, local time
    being UTC + `utc_offset`), in sittings of actions a few minutes apart
    with occasional breaks. Planted sessions are placed the same way."""

    granular = True

    def session_gaps(self, rng: Rng, n: int) -> list[float]:
        """Gaps between n actions of one planted sitting: the same model as
        the day-spreading of real ratings."""
        return session_gaps(rng, n)

    def __init__(self, utc_offset: int, wake_start: int = 7 * HOUR, wake_end: int = 23 * HOUR + 30 * MINUTE):
        self.utc_offset = utc_offset
        self.wake_start = wake_start
        self.wake_end = wake_end

    def day_of(self, t: float) -> int:
        return int(math.floor((t + self.utc_offset) / DAY))

    def day_start(self, day: int) -> int:
        return day * DAY - self.utc_offset

    def time_of_day(self, t: float) -> float:
        return (t + self.utc_offset) % DAY

    def spread_day(self, day_start: int, n: int, rng: Rng) -> list[int]:
        """Times of n actions on the day starting at day_start (UTC
        seconds), in the given order, strictly increasing."""
        gaps = []
        for _ in range(n - 1):
            if rng.chance(BREAK_P):
                gaps.append(rng.uniform(BREAK_MIN, BREAK_MAX))
            else:
                gaps.append(short_gap(rng))
        width = self.wake_end - self.wake_start
        total = sum(gaps)
        if total > width - 1:
            scale = (width - 1) / total
            gaps = [g * scale for g in gaps]
            total = sum(gaps)
        start = day_start + self.wake_start + rng.uniform(0, width - total)
        times = [int(start + o) for o in offsets(gaps)]
        for i in range(1, len(times)):  # one second apart at least
            times[i] = max(times[i], times[i - 1] + 1)
        return times

    def place_session(self, lo: float, hi: float, duration: float, rng: Rng) -> int:
        """Start of a sitting of `duration` seconds on a day drawn uniformly
        from the days of [lo, hi], at a waking hour."""
        day = rng.integer(self.day_of(lo), self.day_of(hi))
        width = self.wake_end - self.wake_start
        return int(self.day_start(day) + self.wake_start + rng.uniform(0, max(width - duration, 0)))

    def later(self, t0: float, lo: float, hi: float, duration: float, rng: Rng) -> int:
        """A sitting starting lo..hi (log-uniform) after t0, at a waking
        hour: draws falling at night are drawn again."""
        for _ in range(1000):
            t = t0 + rng.log_uniform(lo, hi)
            tod = self.time_of_day(t)
            if self.wake_start <= tod <= self.wake_end - duration:
                return int(t)
        # Unreachable for the ranges used here (lo..hi always spans waking time).
        return int(self.day_start(self.day_of(t0 + lo) + 1) + self.wake_start)

    def days_later(self, t0: float, min_days: int, max_days: int, duration: float, rng: Rng) -> int:
        """A sitting at a waking hour of a day min_days..max_days after t0's."""
        day = self.day_of(t0) + rng.integer(min_days, max_days)
        width = self.wake_end - self.wake_start
        return int(self.day_start(day) + self.wake_start + rng.uniform(0, max(width - duration, 0)))


class ExactModel:
    """Sources with real second-resolution times (MovieLens): real times are
    kept; planted sittings start at a uniform second in their interval, and
    the gaps inside a planted sitting are drawn from the source's own gaps
    between successive ratings of one user less than `SITTING_GAP` apart,
    so that gaps never tell planted from real."""

    granular = False

    def __init__(self, gaps: list[float]):
        self.gaps = sorted(gaps) or [GAP_MEDIAN]

    def session_gaps(self, rng: Rng, n: int) -> list[float]:
        return [float(self.gaps[rng.integer(0, len(self.gaps) - 1)]) for _ in range(max(n - 1, 0))]

    def place_session(self, lo: float, hi: float, duration: float, rng: Rng) -> int:
        return int(rng.uniform(lo, hi))

    def later(self, t0: float, lo: float, hi: float, duration: float, rng: Rng) -> int:
        return int(t0 + rng.log_uniform(lo, hi))

    def days_later(self, t0: float, min_days: int, max_days: int, duration: float, rng: Rng) -> int:
        """A uniform second of the days min_days..max_days after t0."""
        return int(t0 + rng.uniform(min_days * DAY, (max_days + 1) * DAY))


# ---------------------------------------------------------------- sources


@dataclass
class Rating:
    """One rating of the source: `t` is the day start (day resolution) or
    the exact time, in UTC seconds; `order` its position in the file."""

    user: str
    item: str
    rating: int
    t: int
    order: int


@dataclass
class Source:
    name: str
    ratings: list[Rating]
    items: dict[str, tuple[str, ...]]  # item id -> labels
    follows: list[tuple[str, str]]
    model: object
    counts: dict[str, int] = field(default_factory=dict)  # what loading found / dropped
    notes: list[str] = field(default_factory=list)


def slug(name: str) -> str:
    s = name.strip().lower().replace("&", " and ")
    s = re.sub(r"[^a-z0-9]+", "-", s)
    return s.strip("-")


def read_ciao_catalog(path: str) -> dict[int, str]:
    """`<id> <name>` per line. The source file has lost the accent of "Ciao
    Café" (a '?' stands in its place): restored here."""
    out: dict[int, str] = {}
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("latin-1").strip()
            if not line:
                continue
            num, _, name = line.partition(" ")
            if name.lower() == "ciao caf?":
                name = "Ciao Cafe"
            out[int(num)] = "category/" + slug(name)
    return out


def load_mat(path: str, key: str):
    import numpy as np
    import scipy.io

    if path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(key + ".mat")]
            if not names:
                raise SystemExit(f"{path}: no {key}.mat inside")
            data = scipy.io.loadmat(io.BytesIO(z.read(names[0])))
    else:
        data = scipy.io.loadmat(path)
    arrays = {k: v for k, v in data.items() if not k.startswith("__")}
    if len(arrays) != 1:
        raise SystemExit(f"{path}: expected one matrix, found {sorted(arrays)}")
    return np.asarray(next(iter(arrays.values())), dtype=np.int64)


# All 284,086 Ciao timestamps are 07:00 UTC: local midnight at UTC-7.
CIAO_UTC_OFFSET = -7 * HOUR


def load_ciao(ratings_path: str, catalog_path: str, trust_path: str | None) -> Source:
    cats = read_ciao_catalog(catalog_path)
    m = load_mat(ratings_path, "rating_with_timestamp")
    if m.ndim != 2 or m.shape[1] != 6:
        raise SystemExit(f"{ratings_path}: expected 6 columns (user, product, category, rating, helpfulness, time), got {m.shape}")
    counts: Counter = Counter()
    counts["rows"] = int(m.shape[0])
    ratings: list[Rating] = []
    item_cats: dict[str, set] = defaultdict(set)
    seen: set = set()
    tod = Counter()
    for order, row in enumerate(m.tolist()):
        user, product, cat, rating, _helpfulness, t = row
        if user <= 0 or product <= 0 or t <= 0 or cat not in cats:
            counts["dropped: bad row (id or time not positive, or unknown category)"] += 1
            continue
        key = (user, product, cat, rating, _helpfulness, t)
        if key in seen:
            counts["dropped: exact duplicate row"] += 1
            continue
        seen.add(key)
        if not 1 <= rating <= 5:
            counts["kept: rating outside 1..5 (kept as given)"] += 1
        tod[(t + CIAO_UTC_OFFSET) % DAY] += 1
        u, p = f"u{user}", f"p{product}"
        item_cats[p].add(cats[cat])
        ratings.append(Rating(u, p, int(rating), int(t), order))
    if set(tod) != {0}:
        counts["note: timestamps not at local midnight (UTC-7)"] = sum(v for k, v in tod.items() if k != 0)
    multi = sum(1 for v in item_cats.values() if len(v) > 1)
    if multi:
        counts["note: products listed under two or more categories (labels: all of them)"] = multi
    per_pair = Counter((r.user, r.item) for r in ratings)
    counts["kept: repeated ratings of one product by one user on other days"] = sum(c - 1 for c in per_pair.values() if c > 1)
    items = {p: tuple(sorted(v)) for p, v in item_cats.items()}
    follows: list[tuple[str, str]] = []
    if trust_path:
        tm = load_mat(trust_path, "trustnetwork")
        counts["trust rows"] = int(tm.shape[0])
        fseen = set()
        for a, b in tm[:, :2].tolist():
            if a <= 0 or b <= 0:
                counts["dropped: bad trust row"] += 1
            elif a == b:
                counts["dropped: trust row of a user to itself"] += 1
            elif (a, b) in fseen:
                counts["dropped: duplicate trust row"] += 1
            else:
                fseen.add((a, b))
                follows.append((f"u{a}", f"u{b}"))
    return Source("ciao", ratings, items, follows, DayModel(CIAO_UTC_OFFSET), dict(counts))


MOVIELENS_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
]


def movielens_genre_label(name: str) -> str:
    return "genre/" + slug(name.replace("'", ""))


def load_movielens(directory: str) -> Source:
    counts: Counter = Counter()
    genres = MOVIELENS_GENRES
    gpath = os.path.join(directory, "u.genre")
    if os.path.exists(gpath):
        with open(gpath, encoding="latin-1") as f:
            pairs = [line.strip().split("|") for line in f if line.strip()]
        genres = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    items: dict[str, tuple[str, ...]] = {}
    with open(os.path.join(directory, "u.item"), encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\r\n").split("|")
            if len(parts) != 5 + len(genres) or not parts[0].isdigit():
                counts["dropped: bad u.item line"] += 1
                continue
            flags = parts[5:]
            # "unknown" is the absence of a genre, not one: no label.
            labels = tuple(sorted(movielens_genre_label(g) for g, fl in zip(genres, flags) if fl == "1" and g != "unknown"))
            if not labels:
                counts["note: movies without a genre (no labels)"] += 1
            items[f"m{parts[0]}"] = labels
    ratings: list[Rating] = []
    seen = set()
    with open(os.path.join(directory, "u.data"), encoding="latin-1") as f:
        for order, line in enumerate(f):
            counts["rows"] += 1
            parts = line.split()
            if len(parts) != 4 or not all(p.isdigit() for p in parts):
                counts["dropped: bad u.data line"] += 1
                continue
            user, movie, rating, t = (int(p) for p in parts)
            if user <= 0 or t <= 0 or f"m{movie}" not in items:
                counts["dropped: bad row (id or time not positive, or movie not in u.item)"] += 1
                continue
            if (user, movie, rating, t) in seen:
                counts["dropped: exact duplicate row"] += 1
                continue
            seen.add((user, movie, rating, t))
            if not 1 <= rating <= 5:
                counts["kept: rating outside 1..5 (kept as given)"] += 1
            ratings.append(Rating(f"u{user}", f"m{movie}", rating, t, order))
    per_pair = Counter((r.user, r.item) for r in ratings)
    counts["kept: repeated ratings of one movie by one user"] = sum(c - 1 for c in per_pair.values() if c > 1)
    rated = {r.item for r in ratings}
    unrated = [i for i in items if i not in rated]
    if unrated:
        counts["note: movies in u.item never rated (left out of items)"] = len(unrated)
    by_user: dict[str, list[int]] = {}
    for r in ratings:
        by_user.setdefault(r.user, []).append(r.t)
    gaps = []
    for user in sorted(by_user):
        ts = sorted(by_user[user])
        gaps.extend(b - a for a, b in zip(ts, ts[1:]) if 0 < b - a < SITTING_GAP)
    return Source("movielens", ratings, items, [], ExactModel(gaps), dict(counts))


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    ts: int  # UTC seconds
    actor: str
    action: str
    target: str
    rating: int | None = None

    def key(self):
        return (self.ts, self.actor, self.action, self.target)


def place_times(source: Source, seed: int) -> list[Event]:
    """Real ratings as like events. Day-resolution sources get times inside
    the day (`DayModel.spread_day`), from a random stream of each user's own
    (so a user's times depend on the seed and that user's ratings only),
    keeping each day's order in the file; exact sources keep their times."""
    model = source.model
    if not getattr(model, "granular", False):
        return [Event(r.t, r.user, "like", r.item, r.rating) for r in source.ratings]
    by_user: dict[str, list[Rating]] = defaultdict(list)
    for r in source.ratings:
        by_user[r.user].append(r)
    out: list[Event] = []
    for user in sorted(by_user, key=id_key):
        rs = sorted(by_user[user], key=lambda r: (r.t, r.order))
        rng = Rng(seed, source.name, "days", user)
        i = 0
        while i < len(rs):
            j = i
            while j < len(rs) and rs[j].t == rs[i].t:
                j += 1
            day_start = model.day_start(model.day_of(rs[i].t))
            times = model.spread_day(day_start, j - i, rng)
            out.extend(Event(ts, r.user, "like", r.item, r.rating) for ts, r in zip(times, rs[i:j]))
            i = j
    return out


def id_key(s: str):
    """Sort key for ids like u123: prefix, then number."""
    m = re.match(r"([^0-9]*)([0-9]+)$", s)
    return (m.group(1), int(m.group(2)), "") if m else (s, -1, s)


def half_of(user: str) -> str:
    """The half an account belongs to: a stable hash of its id, independent
    of the seed, so `a` is always the same accounts."""
    return "a" if hashlib.sha256(("changeling-real/split/" + user).encode()).digest()[0] % 2 == 0 else "b"


# ---------------------------------------------------------------- planting


@dataclass
class PlantParams:
    min_ratings: int = 20  # accounts eligible for an episode: at least this many real ratings
    compromise_rate: float = 0.01
    regret_rate: float = 0.01
    binge_rate: float = 0.005
    rare_share: float = 0.02  # a label is "rare" for an account at or below this share of its ratings
    attack_likes: tuple[int, int] = (3, 8)
    attack_span: tuple[int, int] = (5 * MINUTE, 40 * MINUTE)
    attack_labels: tuple[int, int] = (1, 3)
    removal_delay: tuple[int, int] = (20 * MINUTE, 24 * HOUR)
    regret_delay: tuple[int, int] = (2 * HOUR, 28 * DAY)
    binge_likes: tuple[int, int] = (5, 10)
    binge_followups: tuple[int, int] = (3, 6)  # later sittings on the new interest
    binge_followup_likes: tuple[int, int] = (1, 3)
    binge_followup_days: tuple[int, int] = (1, 42)


@dataclass
class Label:
    actor: str
    label: str
    start: int
    end: int
    style: str


@dataclass
class Planted:
    events: list[Event]
    labels: list[Label]
    stats: Counter


class Population:
    """What planting draws from: one half's real likes."""

    def __init__(self, events: list[Event], items: dict[str, tuple[str, ...]]):
        self.items = items
        self.by_user: dict[str, list[Event]] = defaultdict(list)
        self.item_count: Counter = Counter()
        self.item_ratings: dict[str, list[int]] = defaultdict(list)
        self.label_count: Counter = Counter()
        for e in events:
            self.by_user[e.actor].append(e)
            self.item_count[e.target] += 1
            if e.rating is not None:
                self.item_ratings[e.target].append(e.rating)
            for lab in items.get(e.target, ()):
                self.label_count[lab] += 1
        for evs in self.by_user.values():
            evs.sort(key=Event.key)
        # Items carrying each label, in a fixed order, weighted by how often
        # they were rated: attackers and new interests go for items people
        # actually rate.
        by_label: dict[str, list[str]] = defaultdict(list)
        for item in sorted(self.item_count, key=id_key):
            for lab in items.get(item, ()):
                by_label[lab].append(item)
        self.label_items = dict(by_label)
        self.labels = sorted(self.label_count)

    def user_labels(self, user: str) -> Counter:
        c: Counter = Counter()
        for e in self.by_user[user]:
            for lab in self.items.get(e.target, ()):
                c[lab] += 1
        return c

    def candidates(self, user: str, wanted: set[str], rare: set[str]) -> tuple[list[str], list[float]]:
        """Items with a label in `wanted` and every label rare for the
        account, that it never rated; weight: ratings by other accounts
        (items nobody else rated only as a last resort)."""
        own = Counter(e.target for e in self.by_user[user])
        seen: set = set()
        xs, ws = [], []
        for lab in sorted(wanted):
            for item in self.label_items.get(lab, ()):
                if item in seen or item in own:
                    continue
                seen.add(item)
                labs = self.items.get(item, ())
                if labs and all(x in rare for x in labs):
                    xs.append(item)
                    ws.append(max(self.item_count[item] - own[item], 0) + 1e-3)
        return xs, ws

    def rating_for(self, item: str, rng: Rng) -> int:
        rs = self.item_ratings.get(item)
        return rng.pick(rs) if rs else 5


def plant(events: list[Event], items: dict[str, tuple[str, ...]], model, rng: Rng, params: PlantParams) -> Planted:
    """Chooses accounts and plants one episode in each; see the module
    documentation and datasets/README.md for the model."""
    pop = Population(events, items)
    stats: Counter = Counter()
    eligible = [u for u in sorted(pop.by_user, key=id_key) if len(pop.by_user[u]) >= params.min_ratings]
    stats["accounts"] = len(pop.by_user)
    stats["eligible accounts"] = len(eligible)
    rng.shuffle(eligible)
    want = [
        ("compromise", round(params.compromise_rate * len(eligible))),
        ("regret", round(params.regret_rate * len(eligible))),
        ("binge", round(params.binge_rate * len(eligible))),
    ]
    out_events: list[Event] = []
    labels: list[Label] = []
    pos = 0
    for kind, n in want:
        done = 0
        while done < n and pos < len(eligible):
            user = eligible[pos]
            pos += 1
            if kind == "compromise":
                style = "planted-removed" if done % 2 == 0 else "planted-kept"
                res = plant_compromise(pop, user, style, model, rng, params)
            elif kind == "regret":
                res = plant_regret(pop, user, model, rng, params)
            else:
                res = plant_binge(pop, user, model, rng, params)
            if res is None:
                stats[f"unplaceable {kind} (account skipped)"] += 1
                continue
            evs, label = res
            out_events.extend(evs)
            labels.append(label)
            stats[f"style {label.style}"] += 1
            done += 1
        if done < n:
            stats[f"short of {kind} accounts"] += n - done
    stats["planted likes"] = sum(1 for e in out_events if e.action == "like")
    stats["planted unlikes"] = sum(1 for e in out_events if e.action == "unlike")
    labels.sort(key=lambda l: id_key(l.actor))
    return Planted(out_events, labels, stats)


def anchor_interval(pop: Population, user: str, rng: Rng) -> tuple[int, int]:
    """A random time inside the account's active span, weighted by its
    activity: the interval between two consecutive real likes, the first
    chosen uniformly."""
    evs = pop.by_user[user]
    k = rng.integer(0, len(evs) - 2)
    return evs[k].ts, evs[k + 1].ts


def plant_compromise(pop: Population, user: str, style: str, model, rng: Rng, p: PlantParams):
    counts = pop.user_labels(user)
    n_real = len(pop.by_user[user])
    rare = {lab for lab in pop.labels if counts[lab] <= p.rare_share * n_real}
    # Labels the attacker can bring: rare for this account, with items to
    # like; chosen by their share of the population's ratings.
    options = [lab for lab in pop.labels if lab in rare and pop.candidates(user, {lab}, rare)[0]]
    if not options:
        return None
    k = min(rng.integer(*p.attack_labels), len(options))
    chosen = set(rng.weighted_sample(options, [pop.label_count[lab] for lab in options], k))
    xs, ws = pop.candidates(user, chosen, rare)
    n = rng.integer(*p.attack_likes)
    targets = CumulativeSampler(xs, ws).sample(rng, n, set())
    if len(targets) < p.attack_likes[0]:
        return None
    n = len(targets)
    # The sitting's length within attack_span where the source's pace allows
    # it (a source of seconds-apart sittings may rarely reach its minimum).
    for _ in range(1000):
        gaps = model.session_gaps(rng, n)
        if p.attack_span[0] <= sum(gaps) <= p.attack_span[1]:
            break
    lo, hi = anchor_interval(pop, user, rng)
    t0 = model.place_session(lo, hi, sum(gaps), rng)
    likes = [Event(t0 + int(o), user, "like", it, pop.rating_for(it, rng)) for o, it in zip(offsets(gaps), targets)]
    evs = list(likes)
    end = likes[-1].ts
    if style == "planted-removed":
        m = rng.integer(1, n)
        idx = sorted(rng.weighted_sample(list(range(n)), [1.0] * n, m))
        ugaps = model.session_gaps(rng, m)
        t1 = model.later(likes[-1].ts, *p.removal_delay, sum(ugaps), rng)
        unlikes = [Event(t1 + int(o), user, "unlike", likes[i].target) for o, i in zip(offsets(ugaps), idx)]
        evs.extend(unlikes)
        end = unlikes[-1].ts
    return evs, Label(user, "compromised", likes[0].ts, end, style)


def plant_regret(pop: Population, user: str, model, rng: Rng, p: PlantParams):
    evs = pop.by_user[user]
    once = Counter(e.target for e in evs)
    # one or two consecutive real likes of items the account liked once
    n = 1 if rng.chance(0.5) else 2
    for _ in range(20):
        k = rng.integer(0, len(evs) - n)
        picked = evs[k : k + n]
        if all(once[e.target] == 1 for e in picked) and len({e.target for e in picked}) == n:
            break
    else:
        return None
    ugaps = model.session_gaps(rng, n)
    t1 = model.later(picked[-1].ts, *p.regret_delay, sum(ugaps), rng)
    unlikes = [Event(t1 + int(o), user, "unlike", e.target) for o, e in zip(offsets(ugaps), picked)]
    return unlikes, Label(user, "benign", picked[0].ts, unlikes[-1].ts, "lookalike-regret")


def plant_binge(pop: Population, user: str, model, rng: Rng, p: PlantParams):
    counts = pop.user_labels(user)
    n_real = len(pop.by_user[user])
    rare = {lab for lab in pop.labels if counts[lab] <= p.rare_share * n_real}
    need = p.binge_likes[0]
    options = [lab for lab in pop.labels if counts[lab] == 0 and len(pop.candidates(user, {lab}, rare)[0]) >= need]
    if not options:
        return None
    new = rng.weighted_sample(options, [pop.label_count[lab] for lab in options], 1)[0]
    xs, ws = pop.candidates(user, {new}, rare)
    sampler = CumulativeSampler(xs, ws)
    n = rng.integer(*p.binge_likes)
    used: set = set()
    burst = sampler.sample(rng, n, used)
    used.update(burst)
    gaps = model.session_gaps(rng, len(burst))
    lo, hi = anchor_interval(pop, user, rng)
    t0 = model.place_session(lo, hi, sum(gaps), rng)
    evs = [Event(t0 + int(o), user, "like", it, pop.rating_for(it, rng)) for o, it in zip(offsets(gaps), burst)]
    # The new interest goes on: a few later sittings over the next weeks.
    days = sorted(rng.integer(*p.binge_followup_days) for _ in range(rng.integer(*p.binge_followups)))
    for d in days:
        more = sampler.sample(rng, rng.integer(*p.binge_followup_likes), used)
        if not more:
            break
        used.update(more)
        g = model.session_gaps(rng, len(more))
        t = model.days_later(t0, d, d, sum(g), rng)
        evs.extend(Event(t + int(o), user, "like", it, pop.rating_for(it, rng)) for o, it in zip(offsets(g), more))
    return evs, Label(user, "benign", evs[0].ts, max(e.ts for e in evs), "lookalike-binge")


# ---------------------------------------------------------------- writing


def rfc3339(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


TABLES = ("events", "items", "follows", "labels")


class TableWriter:
    def __init__(self, directory: str, table: str, compress: str):
        self.path = os.path.join(directory, f"{table}.jsonl" + (".zst" if compress == "zst" else ""))
        self.raw = open(self.path, "wb")
        if compress == "zst":
            import zstandard

            self.out = zstandard.ZstdCompressor(level=10).stream_writer(self.raw, closefd=False)
        else:
            self.out = self.raw
        self.records = 0

    def write(self, obj: dict) -> None:
        self.out.write((dumps(obj) + "\n").encode())
        self.records += 1

    def close(self) -> None:
        if self.out is not self.raw:
            self.out.close()
        self.raw.close()


def clear_dataset(directory: str) -> None:
    """Removes this converter's tables from a previous run (another format
    or compression would otherwise leave two copies of a table)."""
    for table in TABLES:
        for ext in (".jsonl", ".jsonl.zst"):
            path = os.path.join(directory, table + ext)
            if os.path.exists(path):
                os.remove(path)


def write_dataset(directory: str, events: list[Event], items: dict[str, tuple[str, ...]], follows: list[tuple[str, str]],
                  labels: list[Label], compress: str, item_author: str) -> dict[str, int]:
    os.makedirs(directory, exist_ok=True)
    clear_dataset(directory)
    events = sorted(events, key=Event.key)
    w = TableWriter(directory, "events", compress)
    for e in events:
        rec = {"ts": rfc3339(e.ts), "actor": e.actor, "action": e.action, "target": e.target}
        if e.rating is not None:
            rec["rating"] = e.rating
        w.write(rec)
    w.close()
    counts = {"events": w.records}
    touched = sorted({e.target for e in events}, key=id_key)
    w = TableWriter(directory, "items", compress)
    for item in touched:
        rec: dict = {"id": item}
        if item_author == "item-id":
            rec["author"] = item
        labs = items.get(item, ())
        if labs:
            rec["labels"] = list(labs)
        w.write(rec)
    w.close()
    counts["items"] = w.records
    if follows:
        w = TableWriter(directory, "follows", compress)
        for a, b in sorted(follows, key=lambda f: (id_key(f[0]), id_key(f[1]))):
            w.write({"follower": a, "followee": b})
        w.close()
        counts["follows"] = w.records
    w = TableWriter(directory, "labels", compress)
    for lab in labels:
        w.write({"actor": lab.actor, "label": lab.label, "start": rfc3339(lab.start), "end": rfc3339(lab.end), "style": lab.style})
    w.close()
    counts["labels"] = w.records
    return counts


# ---------------------------------------------------------------- driver


def repo_root() -> str:
    return os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def check_out_dir(out: str) -> None:
    real = os.path.realpath(out)
    root = repo_root()
    if os.path.exists(os.path.join(root, ".git")) and (real == root or real.startswith(root + os.sep)):
        raise SystemExit(f"refusing to write into the repository ({real}): this data may not be redistributed; choose --out outside {root}")


def convert(source: Source, out: str, seed: int, params: PlantParams, compress: str, item_author: str, log=print) -> dict:
    log(f"== {source.name}: {len(source.ratings):,} ratings kept, {len(source.items):,} items, {len(source.follows):,} follows")
    for k, v in sorted(source.counts.items()):
        log(f"   {k}: {v:,}")
    events = place_times(source, seed)
    halves: dict[str, list[Event]] = {"a": [], "b": []}
    for e in events:
        halves[half_of(e.actor)].append(e)
    follows = {"a": [], "b": []}
    for a, b in source.follows:
        follows[half_of(a)].append((a, b))
    summary = {}
    for half in ("a", "b"):
        rng = Rng(seed, source.name, "plant", half)
        planted = plant(halves[half], source.items, source.model, rng, params)
        directory = os.path.join(out, f"{source.name}-{half}")
        counts = write_dataset(directory, halves[half] + planted.events, source.items, follows[half], planted.labels, compress, item_author)
        s = planted.stats
        span = (min(e.ts for e in halves[half]), max(e.ts for e in halves[half]))
        log(f"-- {directory}: {s['accounts']:,} accounts ({s['eligible accounts']:,} with >= {params.min_ratings} ratings), "
            f"{counts['events']:,} events ({len(halves[half]):,} real likes, {s['planted likes']:,} planted likes, "
            f"{s['planted unlikes']:,} planted unlikes), {counts['items']:,} items, {counts.get('follows', 0):,} follows, "
            f"{counts['labels']:,} labels; {rfc3339(span[0])[:10]} to {rfc3339(span[1])[:10]}")
        for k, v in sorted(s.items()):
            if k.startswith(("style ", "unplaceable", "short of")):
                log(f"   {k}: {v}")
        summary[half] = {"dir": directory, "counts": counts, "stats": dict(s)}
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="source", required=True)
    c = sub.add_parser("ciao", help="Ciao ratings with day timestamps, categories and the trust graph")
    c.add_argument("--ratings", required=True, help="ciao_rating_with_timestamp.mat (or rating_with_timestamp.mat)")
    c.add_argument("--catalog", required=True, help="catalog_ciao.txt: category id and name per line")
    c.add_argument("--trust", help="ciao.zip (holding ciao/trustnetwork.mat) or trustnetwork.mat; without it no follows table")
    ml = sub.add_parser("movielens", help="MovieLens 100k (u.data, u.item, u.genre)")
    ml.add_argument("--dir", required=True, help="the ml-100k directory")
    for p in (c, ml):
        p.add_argument("--out", required=True, help="parent directory (outside the repository) of <source>-a and <source>-b")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--compress", choices=["none", "zst"], default="none")
        p.add_argument("--item-author", choices=["absent", "item-id"], default="item-id",
                       help="item-id (default): a placeholder author equal to the item's own id, which no account "
                            "follows, since the contract requires an author and the sources have none (see "
                            "datasets/README.md); absent: no author, as in the sources (changeling then skips the items, "
                            "and with them their labels)")
        p.add_argument("--min-ratings", type=int, default=PlantParams.min_ratings)
        p.add_argument("--compromise-rate", type=float, default=PlantParams.compromise_rate)
        p.add_argument("--regret-rate", type=float, default=PlantParams.regret_rate)
        p.add_argument("--binge-rate", type=float, default=PlantParams.binge_rate)
    args = ap.parse_args(argv)
    check_out_dir(args.out)
    if args.source == "ciao":
        source = load_ciao(args.ratings, args.catalog, args.trust)
    else:
        source = load_movielens(args.dir)
    if args.item_author == "item-id" and source.follows:
        print("warning: --item-author item-id with a follows table (--trust): no account follows a placeholder "
              "author, so exposure checks will call every like unexposed; leave out --trust to keep exposure "
              "unknown", file=sys.stderr)
    params = PlantParams(min_ratings=args.min_ratings, compromise_rate=args.compromise_rate,
                         regret_rate=args.regret_rate, binge_rate=args.binge_rate)
    convert(source, args.out, args.seed, params, args.compress, args.item_author)
    return 0


if __name__ == "__main__":
    sys.exit(main())
