"""Device and district simulators that speak the wire contract over real MQTT.

`firmware_sim.record` writes the same traffic to a file instead, much faster than real time
(`eldercare sim record`; one line per publish: offset_ms TAB qos TAB retain TAB topic TAB payload).
"""

from firmware_sim.cane import CANE_KINDS, FALL_KINDS, cane_episode, cane_windows
from firmware_sim.district import cover_centres, generate_fleet, load_subdistricts
from firmware_sim.engine import Engine
from firmware_sim.incidents import Incident, read_ground_truth
from firmware_sim.paths import sample_wander, wander_path
from firmware_sim.scenario import FaultRates, Injection, parse_faults, parse_scenario, parse_spec
from firmware_sim.simulation import SimStats, Simulation, run_simulation
from firmware_sim.smoke import SmokeSource, make_source

__all__ = [
    "CANE_KINDS",
    "FALL_KINDS",
    "Engine",
    "FaultRates",
    "Incident",
    "Injection",
    "SimStats",
    "Simulation",
    "SmokeSource",
    "cane_episode",
    "cane_windows",
    "cover_centres",
    "generate_fleet",
    "load_subdistricts",
    "make_source",
    "parse_faults",
    "parse_scenario",
    "parse_spec",
    "read_ground_truth",
    "run_simulation",
    "sample_wander",
    "wander_path",
]
