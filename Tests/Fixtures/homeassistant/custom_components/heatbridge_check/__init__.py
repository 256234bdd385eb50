"""heatbridge's test probe inside a real Home Assistant (IntegrationTests/HomeAssistantRealTests).

Writes what Home Assistant made of heatbridge's MQTT discovery (devices, entities, states) and what its energy
dashboard says of heatbridge's energy sensors (the dashboard's own validation, `energy/validate`), so the test
checks discovery the way Home Assistant reads it rather than only its shape.
"""

import asyncio
import json
import logging

from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy import validate as energy_validate
from homeassistant.components.recorder import get_instance, statistics
from homeassistant.components.recorder.tasks import StatisticsTask
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util

DOMAIN = "heatbridge_check"


class _Capture(logging.Handler):
    """Every warning and error Home Assistant logs (a rejected discovery message is one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}"[:4000])


async def async_setup(hass: HomeAssistant, config: dict) -> bool:
    conf = config[DOMAIN]
    capture = _Capture()
    logging.getLogger().addHandler(capture)

    async def probe() -> None:
        expected = set(conf.get("devices", []))
        energy_count = int(conf.get("energy_sensors", 1))
        deadline = hass.loop.time() + float(conf.get("wait_s", 90))
        ents = er.async_get(hass)
        devs = dr.async_get(hass)

        def ours():
            return [e for e in ents.entities.values() if e.platform == "mqtt" and (e.unique_id or "").startswith("heatbridge_")]

        def energy_ids():
            return sorted(e.entity_id for e in ours() if "_meter_energy_" in e.unique_id)

        def numeric(entity_id: str) -> bool:
            s = hass.states.get(entity_id)
            try:
                float(s.state)
                return True
            except (AttributeError, TypeError, ValueError):
                return False

        def seen_devices():
            return {i[1][len("heatbridge_"):] for d in devs.devices.values() for i in d.identifiers if i[0] == "mqtt"}

        # Until every expected device is there and every energy sensor has a number (or time is up).
        while hass.loop.time() < deadline:
            ids = energy_ids()
            # A device's meter sensors are announced with its first readings (a config updated later), so the
            # probe waits for the number of energy sensors the test expects, each with a number.
            if expected <= seen_devices() and len(ids) >= energy_count and all(numeric(i) for i in ids):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(float(conf.get("settle_s", 3)))

        # The energy dashboard: every heatbridge energy sensor as an individual device, as a person would add it.
        ids = energy_ids()
        manager = await energy_data.async_get_manager(hass)
        await manager.async_update({"device_consumption": [{"stat_consumption": i} for i in ids]})
        # Long-term statistics are compiled every 5 minutes; compile the current period now so the dashboard's
        # "statistics not defined" reflects the sensors, not the clock.
        recorder = get_instance(hass)
        await recorder.async_block_till_done()
        now = dt_util.utcnow()
        start = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
        recorder.queue_task(StatisticsTask(start, False))
        await recorder.async_block_till_done()
        await asyncio.sleep(1)
        await recorder.async_block_till_done()
        validation = (await energy_validate.async_validate(hass)).as_dict()

        from homeassistant.const import __version__ as ha_version

        out = {
            "version": ha_version,
            "devices": [
                {"identifiers": sorted(i[1] for i in d.identifiers), "name": d.name, "manufacturer": d.manufacturer,
                 "model": d.model, "via_device_id": d.via_device_id, "id": d.id}
                for d in devs.devices.values() if any(i[0] == "mqtt" for i in d.identifiers)
            ],
            "entities": [
                {"entity_id": e.entity_id, "unique_id": e.unique_id, "device_id": e.device_id,
                 "state": (hass.states.get(e.entity_id).state if hass.states.get(e.entity_id) else None),
                 "attributes": (dict(hass.states.get(e.entity_id).attributes) if hass.states.get(e.entity_id) else None)}
                for e in ours()
            ],
            "energy_sensors": ids,
            "energy_validation": validation,
            "log": capture.lines,
        }
        path = conf["output"]
        tmp = path + ".tmp"

        def write() -> None:
            with open(tmp, "w") as f:
                json.dump(out, f, default=str, sort_keys=True)
            import os
            os.replace(tmp, path)

        await hass.async_add_executor_job(write)

    async def started(_event) -> None:
        hass.async_create_background_task(probe(), "heatbridge_check probe")

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STARTED, started)
    return True
