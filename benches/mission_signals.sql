-- The three mission signals of changeling, in SQL, for the side-by-side
-- benchmark (benches/compare.sh). compare.sh replaces @EVENTS@, @ITEMS@ and
-- @FOLLOWS@ with read_parquet(...) or read_csv(...) of the same files that
-- changeling reads. Each query does the work changeling's signal does and
-- returns counts, so nothing can be skipped by the optimiser.

CREATE TEMP TABLE ev AS
    SELECT CAST(ts AS TIMESTAMP) AS ts, actor, action, target, target_author, surface FROM @EVENTS@;
CREATE TEMP TABLE it AS SELECT id, author, labels FROM @ITEMS@;
CREATE TEMP TABLE fo AS SELECT follower, followee FROM @FOLLOWS@;

-- 1. off_pattern: for every like, the smoothed probability of the item's
--    most familiar label among the account's history events (like, repost,
--    reply, post) of the 180 days before it, smoothed toward the
--    population's share with 5 pseudo-events; off pattern when <= 0.05 with
--    at least 20 history events. (changeling also weighs the binomial
--    confidence; that is arithmetic on the same counts.)
WITH hist AS (
    SELECT e.actor, e.ts, e.action, e.target, unnest(i.labels) AS label
    FROM ev e JOIN it i ON i.id = e.target
    WHERE e.action IN ('like', 'repost', 'reply', 'post')
),
pop AS (
    SELECT label, count(*)::DOUBLE / sum(count(*)) OVER () AS share FROM hist GROUP BY label
),
n AS (
    SELECT actor, ts, target, action,
           count(*) OVER (PARTITION BY actor ORDER BY ts
                          RANGE BETWEEN INTERVAL 180 DAYS PRECEDING AND CURRENT ROW) - 1 AS n
    FROM (SELECT DISTINCT actor, ts, target, action FROM hist)
),
c AS (
    SELECT actor, ts, target, action, label,
           count(*) OVER (PARTITION BY actor, label ORDER BY ts
                          RANGE BETWEEN INTERVAL 180 DAYS PRECEDING AND CURRENT ROW) - 1 AS c
    FROM hist
),
p AS (
    SELECT c.actor, c.ts, c.target, max((c.c + 5 * pop.share) / (n.n + 5)) AS p, any_value(n.n) AS n
    FROM c JOIN n USING (actor, ts, target, action) JOIN pop USING (label)
    WHERE c.action = 'like'
    GROUP BY c.actor, c.ts, c.target
)
SELECT 'off_pattern' AS signal, count(*) FILTER (WHERE p <= 0.05 AND n >= 20) AS flagged, count(*) AS judged FROM p;

-- 2. unlike_latency: each unlike paired with the account's latest earlier
--    like of the same item; latencies in 10 min .. 48 h, and taps <= 30 s.
WITH likes AS (SELECT actor, target, ts FROM ev WHERE action = 'like'),
unlikes AS (SELECT actor, target, ts FROM ev WHERE action = 'unlike'),
pairs AS (
    SELECT u.ts - l.ts AS latency
    FROM unlikes u ASOF JOIN likes l ON u.actor = l.actor AND u.target = l.target AND u.ts >= l.ts
)
SELECT 'unlike_latency' AS signal,
       count(*) FILTER (WHERE latency BETWEEN INTERVAL 10 MINUTES AND INTERVAL 48 HOURS) AS flagged,
       count(*) AS judged
FROM pairs;

-- 3. feed_exposure (follow path): was the liked item's author followed at
--    the moment of the like: the account's latest follow/unfollow event of
--    that author before the like decides, else the initial follows table.
WITH likes AS (
    SELECT e.actor, e.ts, coalesce(e.target_author, i.author) AS author
    FROM ev e LEFT JOIN it i ON i.id = e.target
    WHERE e.action = 'like'
),
fe AS (SELECT actor AS follower, target AS followee, ts, action FROM ev WHERE action IN ('follow', 'unfollow')),
judged AS (
    SELECT CASE WHEN f.action IS NOT NULL THEN f.action = 'follow' ELSE fo.follower IS NOT NULL END AS followed
    FROM likes l
    ASOF LEFT JOIN fe f ON f.follower = l.actor AND f.followee = l.author AND l.ts >= f.ts
    LEFT JOIN fo ON fo.follower = l.actor AND fo.followee = l.author
)
SELECT 'feed_exposure' AS signal, count(*) FILTER (WHERE NOT followed) AS flagged, count(*) AS judged FROM judged;
