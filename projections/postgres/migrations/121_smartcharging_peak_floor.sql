-- The peak floor a site's latest plan used and where it came from (ChargingScheduleComputed.peak_floor: the kW, the
-- site's mode, `history` with the earlier day whose uncontrolled peak it is a fraction of, `no_history`, `fixed` or
-- `off`).  NULL for a plan made before the processor reported it.  Shown by GET /api/smartcharging/sites/{id}.
ALTER TABLE sc_schedules ADD COLUMN IF NOT EXISTS peak_floor jsonb;
