-- voisinage's recommendation at its first widening step (neighbours within 6 hops plus the
-- EPCI), written in SQL as a user of PostgreSQL would: a recursive CTE for the hops and the
-- same scoring (src/core/recommend.rs, default parameters). bench/peer.sh checks that it gives
-- the engine's top 3 on a sample of communes, then times both.

-- Whole calendar months from a to b (src/core/catalog.rs `months_between`). One expression,
-- no FROM, so that PostgreSQL inlines it.
CREATE FUNCTION months_between(a date, b date) RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT ((extract(year FROM b) - extract(year FROM a)) * 12 + extract(month FROM b) - extract(month FROM a))::int
        - CASE WHEN (extract(year FROM b) - extract(year FROM a)) * 12 + extract(month FROM b) - extract(month FROM a) > 0
                    AND extract(day FROM b) < extract(day FROM a) THEN 1
               WHEN (extract(year FROM b) - extract(year FROM a)) * 12 + extract(month FROM b) - extract(month FROM a) < 0
                    AND extract(day FROM b) > extract(day FROM a) THEN -1
               ELSE 0 END
$$;

-- Great-circle distance in km (haversine, mean Earth radius 6,371,008.8 m, as the geo crate).
CREATE FUNCTION haversine_km(lon1 float8, lat1 float8, lon2 float8, lat2 float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT 2 * 6371.0088 * asin(sqrt(
        power(sin(radians(lat2 - lat1) / 2), 2) + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lon2 - lon1) / 2), 2)))
$$;

-- Quality of one feedback record on the 1-5 scale (incident penalty 0.25, downtime 0.15).
CREATE FUNCTION quality(reliability int, incidents int, downtime float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(1.0, least(5.0, reliability - 0.25 * ln(1 + incidents) - 0.15 * ln(1 + greatest(downtime, 0))))
$$;

CREATE FUNCTION recommend(origin text, cat text, today date)
RETURNS TABLE (pos float8, product text, generation text, score numeric, adopters bigint)
LANGUAGE sql STABLE AS $$
WITH RECURSIVE
o AS (SELECT * FROM communes WHERE code = origin),
walk (code, hops) AS (
    SELECT origin, 0
    UNION
    SELECT e.b, w.hops + 1 FROM walk w JOIN edges e ON e.a = w.code WHERE w.hops < 6
),
near AS (SELECT code, min(hops) AS hops FROM walk GROUP BY code),
reach0 AS (
    SELECT code, hops FROM near WHERE hops > 0
    UNION ALL
    -- EPCI members beyond the radius count as one hop further.
    SELECT c.code, 7 FROM communes c JOIN o ON c.epci = o.epci WHERE c.code NOT IN (SELECT code FROM near)
),
reach AS MATERIALIZED (
    SELECT r.code, r.hops,
        power(0.5, r.hops - 1) * exp(-haversine_km(o.lon, o.lat, c.lon, c.lat) / 25.0)
            * (1 + 0.5 * coalesce(c.epci = o.epci, false)::int) * (1 + 0.25 * (c.size_class = o.size_class)::int) AS weight
    FROM reach0 r JOIN communes c USING (code) CROSS JOIN o
),
running AS MATERIALIZED (
    SELECT a.product, a.generation, g.ord
    FROM adoptions a LEFT JOIN generations g ON g.product = a.product AND g.generation = a.generation
    WHERE a.commune = origin AND a.category = cat AND a.since <= today AND (a.until IS NULL OR a.until > today)
),
prior AS MATERIALIZED (
    SELECT coalesce(avg(quality(f.reliability, f.incidents, f.downtime_hours)), 3.0) AS mean
    FROM feedback f JOIN adoptions a ON a.id = f.adoption_id
    WHERE a.category = cat AND f.date <= today
),
-- Every report of each generation in the territory: its prior mean (less the nearby reports,
-- which the local estimate counts), shrunk toward the category's by 6 records (prior_weight).
gprior AS MATERIALIZED (
    SELECT a.product, a.generation, sum(quality(f.reliability, f.incidents, f.downtime_hours)) AS gs, count(*) AS gn
    FROM feedback f JOIN adoptions a ON a.id = f.adoption_id
    WHERE a.category = cat AND f.date <= today
    GROUP BY a.product, a.generation
),
-- Generations that cannot be proposed to this commune: support ended or ending within 12
-- months, end undated, phase-out, or support ended before an obligation in force that applies
-- to it (as the engine: that last rule only restates the first).
excluded AS MATERIALIZED (
    SELECT g.product, g.generation FROM generations g CROSS JOIN o
    WHERE g.end_of_support <= (today + interval '12 months')::date
       OR (g.end_of_support IS NULL AND g.eol_undated)
       OR g.phase_out
       OR EXISTS (SELECT 1 FROM regulations r
                  WHERE r.category = cat AND (r.min_population IS NULL OR o.population >= r.min_population)
                    AND (r.max_population IS NULL OR o.population <= r.max_population)
                    AND r.date <= today AND g.end_of_support < r.date)
),
-- The best territory mean among the generations that could be proposed (not run by the commune,
-- not excluded), at least the category's: a proven generation rated more than 0.8 (rating_sd)
-- below it does not count as proven.
best AS MATERIALIZED (
    SELECT greatest(max(prior.mean), coalesce(max((6 * prior.mean + gp.gs) / (6 + gp.gn)), 0)) AS best_mean
    FROM prior LEFT JOIN gprior gp ON EXISTS (SELECT 1 FROM products p WHERE p.product = gp.product)
        AND NOT EXISTS (SELECT 1 FROM running s WHERE s.product = gp.product AND s.generation IS NOT DISTINCT FROM gp.generation)
        AND NOT EXISTS (SELECT 1 FROM excluded x WHERE x.product = gp.product AND x.generation = gp.generation)
),
cand AS (
    SELECT r.code, r.weight, a.id, a.product, a.generation, greatest(months_between(a.since, today), 0) AS months
    FROM reach r JOIN adoptions a ON a.commune = r.code
    WHERE a.category = cat AND a.since <= today AND (a.until IS NULL OR a.until > today)
),
keys AS (
    SELECT DISTINCT c.product, c.generation, g.ord, g.generation IS NOT NULL AS known
    FROM cand c
    JOIN (SELECT DISTINCT product FROM products) p ON p.product = c.product
    LEFT JOIN generations g ON g.product = c.product AND g.generation = c.generation
    WHERE NOT EXISTS (SELECT 1 FROM running s WHERE s.product = c.product AND s.generation IS NOT DISTINCT FROM c.generation)
      AND NOT EXISTS (SELECT 1 FROM running s WHERE s.product = c.product AND g.ord < s.ord)
      AND NOT EXISTS (SELECT 1 FROM excluded x WHERE x.product = c.product AND x.generation = g.generation)
),
agg AS (
    SELECT k.product, k.generation, k.ord, k.known,
        sum(c.weight) AS sk, sum(c.weight * c.months) AS skm,
        count(*) FILTER (WHERE c.months >= 12) AS long, count(*) AS n
    FROM keys k JOIN cand c ON c.product = k.product AND c.generation IS NOT DISTINCT FROM k.generation
    GROUP BY k.product, k.generation, k.ord, k.known
),
fb AS (
    SELECT c.product, c.generation,
        sum(c.weight * power(0.5, greatest(months_between(f.date, today), 0) / 36.0)) AS sw,
        sum(c.weight * power(0.5, greatest(months_between(f.date, today), 0) / 36.0) * quality(f.reliability, f.incidents, f.downtime_hours)) AS swq,
        sum(quality(f.reliability, f.incidents, f.downtime_hours)) AS lq, count(*) AS ln
    FROM cand c JOIN feedback f ON f.adoption_id = c.id
    WHERE f.date <= today
    GROUP BY c.product, c.generation
),
-- Ended adoptions of the reach, for the share of communes that left the generation.
ended AS (
    SELECT a.product, a.generation, count(*) AS n_ended,
        -- Left the product: no other adoption of the same product, started since, still in
        -- service after this one's end (an overlapping upgrade continues the product).
        count(*) FILTER (WHERE NOT EXISTS (
            SELECT 1 FROM adoptions b
            WHERE b.commune = a.commune AND b.category = a.category AND b.id <> a.id AND b.product = a.product
              AND b.since >= a.since AND b.since <= today AND (b.until IS NULL OR b.until > a.until))) AS n_abandoned
    FROM reach r JOIN adoptions a ON a.commune = r.code
    WHERE a.category = cat AND a.since <= today AND a.until <= today
    GROUP BY a.product, a.generation
),
scored AS (
    SELECT s.*,
        (1.0 * reliability + 0.0 * maturity + 0.0 * proximity) / (1.0 + 0.0 + 0.0) AS base
    FROM (
        SELECT t.*,
            -- Less 0.5 (migration_cost) when support ends within the 60-month service life.
            (greatest(1.0, least(5.0, mean - 1.28 * 0.8 / sqrt(n_eff) - CASE WHEN migrates THEN 0.5 ELSE 0 END)) - 1) / 4 AS reliability,
            (0.5 * mean_months / (mean_months + 24) + 0.5 * (1 - exp(-long::float8 / 2)))
                * (1 - abandoned_share)
                * CASE WHEN NOT proven AND newest AND older_supported THEN 0.5 ELSE 1 END AS maturity,
            1 - exp(-sk) AS proximity
        FROM (
            SELECT a.product, a.generation, a.n, a.sk, a.long, a.long >= 2 AS proven,
                6 + coalesce(fb.sw, 0) AS n_eff,
                coalesce((SELECT g.end_of_support < (today + interval '60 months')::date FROM generations g
                          WHERE g.product = a.product AND g.generation = a.generation), false) AS migrates,
                (6 * ((6 * prior.mean + greatest(coalesce(gp.gs, 0) - coalesce(fb.lq, 0), 0))
                      / (6 + greatest(coalesce(gp.gn, 0) - coalesce(fb.ln, 0), 0)))
                 + coalesce(fb.swq, 0)) / (6 + coalesce(fb.sw, 0)) AS mean,
                a.skm / greatest(a.sk, 1e-12) AS mean_months,
                coalesce(e.n_abandoned, 0)::float8 / (a.n + coalesce(e.n_ended, 0)) AS abandoned_share,
                a.known AND a.generation = (SELECT g.generation FROM generations g WHERE g.product = a.product
                                            AND (g.released IS NULL OR g.released <= today) ORDER BY g.ord DESC LIMIT 1) AS newest,
                a.known AND EXISTS (SELECT 1 FROM generations h WHERE h.product = a.product AND h.ord < a.ord
                                    AND NOT EXISTS (SELECT 1 FROM excluded x WHERE x.product = h.product AND x.generation = h.generation)) AS older_supported,
                EXISTS (SELECT 1 FROM running s WHERE s.product = a.product) AS same_product
            FROM agg a CROSS JOIN prior
            LEFT JOIN gprior gp ON gp.product = a.product AND gp.generation IS NOT DISTINCT FROM a.generation
            LEFT JOIN fb ON fb.product = a.product AND fb.generation IS NOT DISTINCT FROM a.generation
            LEFT JOIN ended e ON e.product = a.product AND e.generation IS NOT DISTINCT FROM a.generation
        ) t
    ) s
),
ranked AS (
    SELECT product, generation, n AS adopters, proven, (NOT proven AND coalesce(newest, false)) AS newest_not_proven,
        round(((base + 0.2 * same_product::int) / 1.2)::numeric, 4) AS score,
        -- Proven generations first (unless rated more than rating_sd 0.8 under the best known),
        -- whatever the product; then by score.
        row_number() OVER (ORDER BY (proven AND mean >= best_mean - 0.8) DESC, round(((base + 0.2 * same_product::int) / 1.2)::numeric, 4) DESC, n DESC,
                           product COLLATE "C", generation COLLATE "C" NULLS FIRST) AS pos
    FROM scored CROSS JOIN best
)
SELECT r.pos::float8 AS pos, r.product, r.generation, r.score, r.adopters
FROM ranked r
ORDER BY 1
$$;
