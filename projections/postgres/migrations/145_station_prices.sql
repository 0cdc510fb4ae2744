-- The price ceiling of station search (`max_price`, edges/api/stations.py) compares one number per tariff: the
-- highest energy price per kWh including VAT the tariff can charge (every ENERGY price component of every element,
-- whatever its time/day/power restrictions; OCPI prices exclude VAT, `vat` is a percentage, none means no VAT).
-- Stored with the tariff row so a search reads it through the primary key instead of interpreting JSON per row.
-- NULL: the tariff has no per-kWh price (time, flat or parking only): such stations never pass a price ceiling.
CREATE FUNCTION cv_max_energy_price_incl_vat(tariff jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT max((pc->>'price')::numeric
               * (1 + CASE WHEN jsonb_typeof(pc->'vat') = 'number' THEN (pc->>'vat')::numeric ELSE 0 END / 100))
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(tariff->'elements') = 'array'
                                   THEN tariff->'elements' ELSE '[]'::jsonb END) AS el,
         jsonb_array_elements(CASE WHEN jsonb_typeof(el->'price_components') = 'array'
                                   THEN el->'price_components' ELSE '[]'::jsonb END) AS pc
    WHERE pc->>'type' = 'ENERGY' AND jsonb_typeof(pc->'price') = 'number'
$$;
ALTER TABLE station_tariffs ADD COLUMN max_energy_price_incl_vat numeric
    GENERATED ALWAYS AS (cv_max_energy_price_incl_vat(tariff)) STORED;
