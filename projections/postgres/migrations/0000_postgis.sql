-- PostGIS for the stations' geography column.  The embedded stack and the PostGIS image create it as superuser
-- already; this makes a plain Postgres with the extension installed work too (needs CREATE privilege once).
CREATE EXTENSION IF NOT EXISTS postgis;
