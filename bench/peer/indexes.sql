-- The indexes a user would add for the recommendation query.
CREATE INDEX adoptions_commune_category ON adoptions (commune, category);
CREATE INDEX adoptions_category ON adoptions (category);
CREATE INDEX feedback_adoption ON feedback (adoption_id);
CREATE INDEX communes_epci ON communes (epci);
ANALYZE;
