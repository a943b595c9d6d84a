"""A simulated district: homes spread by population, care centres covering them (pure)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt

from firmware_sim.geo import M_PER_DEG_LAT, m_per_deg_lon
from gateway import CareCenter, Device, DeviceType, Elder, Family, Fleet
from gateway.fleet import DEFAULT_COVERAGE_KM2

# Xicheng District facts (data README): 2020 census population, bounding box.
XICHENG_POPULATION = 1_106_214
XICHENG_BBOX = (39.863, 116.310, 39.975, 116.400)
# Share of elders with each optional device; everyone has a panic button.
DEVICE_SHARE = {DeviceType.SMOKE: 0.8, DeviceType.BAND: 0.4, DeviceType.CANE: 0.25}
ID_PREFIX = {
    DeviceType.BUTTON: "btn",
    DeviceType.SMOKE: "smk",
    DeviceType.BAND: "band",
    DeviceType.CANE: "cane",
}
# Heartbeats: alarm panels poll every 60–90 s, GPS watches keep alive every 3–10 min,
# smoke sensors report hourly or less (data README); smoke telemetry already comes every 60 s.
HEARTBEAT_S = {
    DeviceType.BUTTON: 120,
    DeviceType.SMOKE: 600,
    DeviceType.BAND: 300,
    DeviceType.CANE: 300,
}
# Centres are placed on a triangular lattice slightly tighter than the coverage radius
# so flat-earth rounding never leaves a home just outside.
_LATTICE_MARGIN = 0.97
_SURNAMES = (
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Zhao",
    "Huang",
    "Zhou",
    "Wu",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Gao",
    "Lin",
    "Luo",
)
_GIVEN = (
    "Shufen",
    "Guiying",
    "Xiuying",
    "Yulan",
    "Guilan",
    "Jianguo",
    "Guoqiang",
    "Zhiming",
    "Baoshan",
    "Deming",
    "Fengying",
    "Shuzhen",
    "Yuzhen",
    "Wenhua",
    "Jinsheng",
    "Lihua",
    "Xiulan",
    "Guohua",
    "Zhenhua",
    "Huimin",
)


@dataclass(frozen=True, slots=True)
class Subdistrict:
    """One subdistrict (街道) row of the package's CSV."""

    code: str
    name: str
    lat: float
    lon: float
    area_km2: float | None
    population: int | None


def load_subdistricts(district: str = "xicheng") -> list[Subdistrict]:
    """Read the package's subdistrict table.

    Raises:
        ValueError: for a district without data.
    """
    if district != "xicheng":
        raise ValueError(f"no data for district {district!r}; available: xicheng")
    text = resources.files("firmware_sim").joinpath("xicheng-subdistricts.csv").read_text("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return [
        Subdistrict(
            code=r["code"],
            name=r["name_en"],
            lat=float(r["lat"]),
            lon=float(r["lon"]),
            area_km2=float(r["area_km2"]) if r["area_km2"] else None,
            population=int(r["population"]) if r["population"] else None,
        )
        for r in rows
    ]


def population_shares(
    subs: list[Subdistrict], total: int = XICHENG_POPULATION
) -> npt.NDArray[np.float64]:
    """Each subdistrict's share of residents; blanks split what the known figures leave."""
    known = sum(s.population or 0 for s in subs)
    blanks = [s for s in subs if s.population is None]
    rest = max(total - known, 0) / max(len(blanks), 1)
    pops = np.array([s.population if s.population is not None else rest for s in subs], float)
    shares: npt.NDArray[np.float64] = pops / pops.sum()
    return shares


def _homes(n: int, subs: list[Subdistrict], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """n home positions (lat, lon): uniform over a disc of each subdistrict's area."""
    counts = rng.multinomial(n, population_shares(subs))
    known = [s.area_km2 for s in subs if s.area_km2]
    default_area = sum(known) / len(known)
    out = np.empty((n, 2))
    i = 0
    for sub, k in zip(subs, counts, strict=True):
        radius_m = math.sqrt((sub.area_km2 or default_area) * 1e6 / math.pi)
        r, a = radius_m * np.sqrt(rng.random(k)), rng.uniform(0, 2 * np.pi, k)
        out[i : i + k, 0] = sub.lat + r * np.sin(a) / M_PER_DEG_LAT
        out[i : i + k, 1] = sub.lon + r * np.cos(a) / m_per_deg_lon(sub.lat)
        i += k
    lat0, lon0, lat1, lon1 = XICHENG_BBOX
    out[:, 0] = np.clip(out[:, 0], lat0, lat1)
    out[:, 1] = np.clip(out[:, 1], lon0, lon1)
    return out[rng.permutation(n)]


def cover_centres(
    homes: npt.NDArray[np.float64], coverage_km2: float = DEFAULT_COVERAGE_KM2
) -> npt.NDArray[np.float64]:
    """Care-centre positions such that every home lies within a centre's coverage circle.

    Uses a triangular lattice of spacing r·√3 (r the coverage radius): its Voronoi cells
    are hexagons of circumradius r, so each home's nearest lattice point covers it. Only
    lattice points that are some home's nearest are kept.
    """
    if len(homes) == 0:
        return np.empty((0, 2))
    r_m = math.sqrt(coverage_km2 * 1e6 / math.pi) * _LATTICE_MARGIN
    lat0, lon0 = float(homes[:, 0].mean()), float(homes[:, 1].mean())
    kx = m_per_deg_lon(lat0)
    x, y = (homes[:, 1] - lon0) * kx, (homes[:, 0] - lat0) * M_PER_DEG_LAT
    d = r_m * math.sqrt(3)
    # Lattice coordinates in the basis a1 = (d, 0), a2 = (d/2, d·√3/2).
    v = y / (d * math.sqrt(3) / 2)
    u = x / d - v / 2
    best = np.full(len(homes), np.inf)
    best_uv = np.zeros((len(homes), 2), dtype=np.int64)
    for du in (0, 1):
        for dv in (0, 1):
            cu, cv = np.floor(u) + du, np.floor(v) + dv
            cx, cy = (cu + cv / 2) * d, cv * d * math.sqrt(3) / 2
            dist = np.hypot(x - cx, y - cy)
            closer = dist < best
            best[closer] = dist[closer]
            best_uv[closer] = np.stack([cu, cv], axis=1)[closer]
    used = np.unique(best_uv, axis=0).astype(float)
    cx, cy = (used[:, 0] + used[:, 1] / 2) * d, used[:, 1] * d * math.sqrt(3) / 2
    return np.stack([lat0 + cy / M_PER_DEG_LAT, lon0 + cx / kx], axis=1)


def _name(rng: np.random.Generator) -> str:
    return f"{_SURNAMES[rng.integers(len(_SURNAMES))]} {_GIVEN[rng.integers(len(_GIVEN))]}"


def generate_fleet(n_elders: int, seed: int, district: str = "xicheng") -> Fleet:
    """Generate a fleet (contract §3) for a district: elders, families, devices, care centres.

    Args:
        n_elders: number of elders (10 to 100,000+).
        seed: the same seed gives the same fleet.
        district: which district's data to use (xicheng).

    Raises:
        ValueError: for an unknown district or a negative count.
    """
    if n_elders < 0:
        raise ValueError("n_elders must be >= 0")
    rng = np.random.default_rng(seed)
    homes = _homes(n_elders, load_subdistricts(district), rng)
    centres = cover_centres(homes)
    care_centers = tuple(
        CareCenter(
            f"cc-{i + 1:03d}",
            f"Xicheng care centre {i + 1}",
            round(float(la), 6),
            round(float(lo), 6),
        )
        for i, (la, lo) in enumerate(centres)
    )
    n_fam = rng.integers(1, 3, n_elders)
    has = {t: rng.random(n_elders) < share for t, share in DEVICE_SHARE.items()}
    elders, devices, fam_no = [], [], 0
    counters = dict.fromkeys(ID_PREFIX, 0)
    for i in range(n_elders):
        elder_id = f"el-{i + 1:06d}"
        families = []
        for _ in range(int(n_fam[i])):
            fam_no += 1
            families.append(Family(f"fa-{fam_no:06d}", _name(rng)))
        elders.append(
            Elder(
                elder_id,
                _name(rng),
                round(float(homes[i, 0]), 6),
                round(float(homes[i, 1]), 6),
                families=tuple(families),
            )
        )
        for dtype in ID_PREFIX:
            if dtype is DeviceType.BUTTON or has[dtype][i]:
                counters[dtype] += 1
                device_id = f"{ID_PREFIX[dtype]}-{counters[dtype]:06d}"
                devices.append(Device(device_id, dtype, elder_id, HEARTBEAT_S[dtype]))
    return Fleet(care_centers, tuple(elders), tuple(devices))
