-- PostgreSQL peer of voisinage's recommender (bench/peer.sh): the same data in plain tables,
-- loaded from the CSV files of `cargo run --example peer_export`.
CREATE TABLE communes (
    code text PRIMARY KEY,
    department text NOT NULL,
    population int NOT NULL,
    size_class int NOT NULL,
    epci text,
    lon double precision,  -- NULL: no place (an overseas collectivity; no edge either)
    lat double precision
);
CREATE TABLE edges (a text NOT NULL, b text NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE adoptions (
    id bigint PRIMARY KEY,
    commune text NOT NULL,
    category text NOT NULL,
    product text NOT NULL,
    generation text,
    since date NOT NULL,
    until date
);
CREATE TABLE feedback (
    id bigint PRIMARY KEY,
    adoption_id bigint NOT NULL,
    date date NOT NULL,
    reliability int NOT NULL,
    incidents int NOT NULL,
    downtime_hours double precision NOT NULL
);
CREATE TABLE products (product text NOT NULL, category text NOT NULL, PRIMARY KEY (product, category));
CREATE TABLE generations (
    product text NOT NULL,
    generation text NOT NULL,
    ord int NOT NULL,
    released date,
    end_of_support date,
    eol_undated boolean NOT NULL,
    phase_out boolean NOT NULL,
    PRIMARY KEY (product, generation)
);
CREATE TABLE regulations (category text NOT NULL, min_population int, max_population int, date date NOT NULL);
