"""Tests of the real-log converter on a small made-up table (no real data).

    datasets/real/make.sh test
    (or: cd datasets/real && .venv/bin/python -m unittest -v test_convert)
"""

import json
import os
import tempfile
import unittest
from collections import Counter, defaultdict

import convert as cv

DAY0 = 1_104_537_600 + 7 * cv.HOUR  # 2005-01-01 local midnight at UTC-7, as Ciao writes it
CATS = ["category/books", "category/dvds", "category/music", "category/travel", "category/games", "category/cars"]


def made_up_source(n_users=120, seed=7) -> cv.Source:
    """Users rating items of their two favourite categories on a few days,
    now and then one item elsewhere; items 'p<cat><k>'."""
    rng = cv.Rng("made-up", seed)
    items = {}
    for c, cat in enumerate(CATS):
        for k in range(40):
            items[f"p{c}{k:02d}"] = (cat,)
    ratings = []
    order = 0
    for u in range(1, n_users + 1):
        fav = [u % len(CATS), (u // len(CATS)) % len(CATS)]
        n_days = rng.integer(3, 12)
        day = rng.integer(0, 60)
        for _ in range(n_days):
            day += rng.integer(1, 30)
            for _ in range(rng.integer(1, 9)):
                c = rng.pick(fav) if rng.chance(0.97) else rng.integer(0, len(CATS) - 1)
                ratings.append(cv.Rating(f"u{u}", f"p{c}{rng.integer(0, 39):02d}", rng.integer(1, 5), DAY0 + day * cv.DAY, order))
                order += 1
    follows = [(f"u{u}", f"u{u % n_users + 1}") for u in range(1, n_users + 1)]
    return cv.Source("toy", ratings, items, follows, cv.DayModel(-7 * cv.HOUR))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


class DaySpreading(unittest.TestCase):
    def test_times_stay_in_waking_hours_of_their_day_in_file_order(self):
        src = made_up_source()
        model = src.model
        events = cv.place_times(src, seed=3)
        self.assertEqual(len(events), len(src.ratings))
        # events come out per user, days in order, each day's ratings in file order
        by_user_day = defaultdict(list)
        for r in src.ratings:
            by_user_day[(r.user, r.t)].append(r)
        placed = defaultdict(list)
        for e in events:
            day_start = model.day_start(model.day_of(e.ts))
            placed[(e.actor, day_start)].append(e)
        self.assertEqual(set(placed), set(by_user_day))
        for key, evs in placed.items():
            self.assertEqual([e.target for e in evs], [r.item for r in by_user_day[key]])
            times = [e.ts for e in evs]
            self.assertEqual(times, sorted(times))
            self.assertEqual(len(set(times)), len(times), "one second apart at least")
            for t in times:
                tod = model.time_of_day(t)
                self.assertGreaterEqual(tod, model.wake_start)
                self.assertLessEqual(tod, model.wake_end)

    def test_busy_day_fits_in_the_day(self):
        model = cv.DayModel(-7 * cv.HOUR)
        times = model.spread_day(DAY0, 400, cv.Rng("busy"))
        self.assertEqual(len(times), 400)
        self.assertEqual(model.day_of(times[0]), model.day_of(times[-1]))
        self.assertTrue(all(b > a for a, b in zip(times, times[1:])))

    def test_deterministic_and_seeded(self):
        src = made_up_source()
        a = [e.ts for e in cv.place_times(src, seed=3)]
        b = [e.ts for e in cv.place_times(src, seed=3)]
        c = [e.ts for e in cv.place_times(src, seed=4)]
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_exact_sources_keep_their_times(self):
        src = made_up_source()
        src.model = cv.ExactModel()
        self.assertEqual([e.ts for e in cv.place_times(src, 1)], [r.t for r in src.ratings])


class Planting(unittest.TestCase):
    def setUp(self):
        self.src = made_up_source()
        self.events = cv.place_times(self.src, seed=3)
        self.params = cv.PlantParams(min_ratings=20, compromise_rate=0.1, regret_rate=0.1, binge_rate=0.05)
        self.planted = cv.plant(self.events, self.src.items, self.src.model, cv.Rng("plant", 1), self.params)
        self.real_by_user = defaultdict(list)
        for e in self.events:
            self.real_by_user[e.actor].append(e)

    def own(self, user):
        return [e for e in self.planted.events if e.actor == user]

    def test_counts_per_style(self):
        styles = Counter(l.style for l in self.planted.labels)
        eligible = self.planted.stats["eligible accounts"]
        self.assertGreater(eligible, 40)
        n = round(0.1 * eligible)
        self.assertEqual(styles["planted-removed"] + styles["planted-kept"], n)
        self.assertLessEqual(abs(styles["planted-removed"] - styles["planted-kept"]), 1)
        self.assertEqual(styles["lookalike-regret"], n)
        self.assertEqual(styles["lookalike-binge"], round(0.05 * eligible))
        self.assertEqual(len({l.actor for l in self.planted.labels}), len(self.planted.labels), "one episode an account")
        for l in self.planted.labels:
            self.assertGreaterEqual(len(self.real_by_user[l.actor]), 20)
            self.assertEqual(l.label, "benign" if l.style.startswith("lookalike-") else "compromised")

    def test_attacks(self):
        styles = Counter(l.style for l in self.planted.labels)
        self.assertGreater(styles["planted-removed"], 0)
        self.assertGreater(styles["planted-kept"], 0)
        for l in self.planted.labels:
            if l.label != "compromised":
                continue
            evs = self.own(l.actor)
            likes = [e for e in evs if e.action == "like"]
            unlikes = [e for e in evs if e.action == "unlike"]
            self.assertTrue(3 <= len(likes) <= 8)
            span = likes[-1].ts - likes[0].ts
            self.assertTrue(5 * cv.MINUTE - 1 <= span <= 40 * cv.MINUTE, span)
            real = self.real_by_user[l.actor]
            self.assertTrue(real[0].ts - cv.DAY <= likes[0].ts <= real[-1].ts + cv.DAY, "inside the active span")
            counts = Counter(self.src.items[e.target][0] for e in real)
            for e in likes:
                self.assertNotIn(e.target, {r.target for r in real}, "attacker likes items the owner never rated")
                self.assertLessEqual(counts[self.src.items[e.target][0]], 0.02 * len(real), "rare category")
                self.assertIsNotNone(e.rating)
            self.assertTrue(1 <= len({self.src.items[e.target][0] for e in likes}) <= 3)
            self.assertEqual(l.start, likes[0].ts)
            if l.style == "planted-kept":
                self.assertEqual(unlikes, [])
                self.assertEqual(l.end, likes[-1].ts)
            else:
                self.assertTrue(1 <= len(unlikes) <= len(likes))
                self.assertTrue({e.target for e in unlikes} <= {e.target for e in likes})
                delay = unlikes[0].ts - likes[-1].ts
                self.assertTrue(20 * cv.MINUTE - 1 <= delay <= 24 * cv.HOUR + 1, delay)
                self.assertEqual(l.end, unlikes[-1].ts)
            for e in evs:  # planted sittings are at waking hours too
                self.assertTrue(self.src.model.wake_start <= self.src.model.time_of_day(e.ts) <= self.src.model.wake_end)

    def test_lookalikes(self):
        styles = Counter(l.style for l in self.planted.labels)
        self.assertGreater(styles["lookalike-regret"], 0)
        self.assertGreater(styles["lookalike-binge"], 0)
        for l in self.planted.labels:
            evs = self.own(l.actor)
            real = self.real_by_user[l.actor]
            if l.style == "lookalike-regret":
                self.assertTrue(1 <= len(evs) <= 2)
                for e in evs:
                    self.assertEqual(e.action, "unlike")
                    liked = [r for r in real if r.target == e.target]
                    self.assertEqual(len(liked), 1, "an own real like")
                    self.assertTrue(2 * cv.HOUR - 1 <= e.ts - liked[0].ts <= 28 * cv.DAY + 3600)
            elif l.style == "lookalike-binge":
                self.assertTrue(all(e.action == "like" for e in evs))
                cats = {self.src.items[e.target][0] for e in evs}
                self.assertEqual(len(cats), 1)
                self.assertNotIn(cats.pop(), {self.src.items[r.target][0] for r in real}, "a category new to the account")
                self.assertGreaterEqual(len(evs), 5)
                self.assertGreater(max(e.ts for e in evs) - min(e.ts for e in evs), cv.DAY, "kept up over later days")

    def test_deterministic(self):
        again = cv.plant(self.events, self.src.items, self.src.model, cv.Rng("plant", 1), self.params)
        self.assertEqual(again.events, self.planted.events)
        self.assertEqual(again.labels, self.planted.labels)


class Writing(unittest.TestCase):
    def test_halves_are_contract_datasets(self):
        src = made_up_source()
        with tempfile.TemporaryDirectory() as out:
            params = cv.PlantParams(compromise_rate=0.1, regret_rate=0.1, binge_rate=0.05)
            summary = cv.convert(src, out, 5, params, "none", "absent", log=lambda *a: None)
            users = {}
            for half in ("a", "b"):
                d = os.path.join(out, f"toy-{half}")
                events = read_jsonl(os.path.join(d, "events.jsonl"))
                items = read_jsonl(os.path.join(d, "items.jsonl"))
                follows = read_jsonl(os.path.join(d, "follows.jsonl"))
                labels = read_jsonl(os.path.join(d, "labels.jsonl"))
                users[half] = {e["actor"] for e in events}
                self.assertTrue(all(cv.half_of(u) == half for u in users[half]))
                self.assertEqual([e["ts"] for e in events], sorted(e["ts"] for e in events))
                for e in events:
                    self.assertEqual(set(e) - {"rating"}, {"ts", "actor", "action", "target"})
                    self.assertRegex(e["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
                self.assertEqual({i["id"] for i in items}, {e["target"] for e in events})
                self.assertTrue(all("author" not in i and i["labels"] for i in items))
                self.assertTrue(all(cv.half_of(f["follower"]) == half for f in follows))
                for l in labels:
                    self.assertEqual(set(l), {"actor", "label", "start", "end", "style"})
                    self.assertIn(l["actor"], users[half])
                self.assertEqual(summary[half]["counts"]["events"], len(events))
            self.assertFalse(users["a"] & users["b"])
            self.assertEqual(users["a"] | users["b"], {r.user for r in src.ratings})
            first = read_bytes(os.path.join(out, "toy-a", "events.jsonl"))
            cv.convert(src, out, 5, params, "none", "absent", log=lambda *a: None)
            self.assertEqual(read_bytes(os.path.join(out, "toy-a", "events.jsonl")), first, "same seed, same bytes")

    def test_item_id_placeholder_author(self):
        src = made_up_source(n_users=30)
        with tempfile.TemporaryDirectory() as out:
            cv.convert(src, out, 5, cv.PlantParams(), "zst", "item-id", log=lambda *a: None)
            import zstandard

            with open(os.path.join(out, "toy-a", "items.jsonl.zst"), "rb") as f:
                text = zstandard.ZstdDecompressor().stream_reader(f).read().decode()
            items = [json.loads(line) for line in text.splitlines()]
            self.assertTrue(items)
            self.assertTrue(all(i["author"] == i["id"] for i in items))
            self.assertFalse(os.path.exists(os.path.join(out, "toy-a", "items.jsonl")))

    def test_refuses_output_inside_the_repository(self):
        with self.assertRaises(SystemExit):
            cv.check_out_dir(os.path.join(cv.repo_root(), "datasets", "x"))


if __name__ == "__main__":
    unittest.main()
