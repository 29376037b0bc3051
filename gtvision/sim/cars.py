"""The three cars of the paper's Table I and their tyre compounds.

Each :class:`CarSpec` holds the public figures of the real car (power, mass, layout, and the published
0-100 km/h time and top speed where they exist) and the model parameters of our single-track model
that are not published (centre-of-gravity height, aero coefficients, gear ratios), chosen so that the
simulated car matches the published figures; ``gtvision bench cars`` / notebook 01 compare the two.
"""
from __future__ import annotations

from dataclasses import dataclass

TIRE_GRIP = {
    # Peak friction coefficient of each compound on dry asphalt.
    # Paper Table I names the compounds; GT7's grip values are not published. Ours follow GT7's
    # ordering (Sports Medium < Racing Hard < Racing Medium) and the Alfa 4C's published 1.1 g.
    "sports_medium": 1.10,
    "racing_hard": 1.30,
    "racing_medium": 1.40,
}


@dataclass(frozen=True)
class CarSpec:
    """A car model: public figures plus the parameters of the simulator's single-track model."""

    name: str
    """Short id."""
    display_name: str
    """Name as in the paper's Table I."""
    drivetrain: str
    """'FWD', 'RWD' or 'AWD'."""
    front_drive_share: float
    """Fraction of the drive force on the front axle (1 FWD, 0 RWD)."""
    tire: str
    """Tyre compound of Table I (a key of TIRE_GRIP)."""
    mass_kg: float
    """Mass in race trim (kg)."""
    power_kw: float
    """Peak power at the wheels' driveline input (kW)."""
    peak_power_rpm: float
    """Engine (or motor) speed of peak power (rpm)."""
    redline_rpm: float
    """Upshift point (rpm)."""
    launch_rpm: float
    """Engine speed held by the clutch at a standing start (rpm)."""
    gear_ratios: tuple
    """Gearbox ratios, first to top."""
    final_drive: float
    """Final drive ratio."""
    electric: bool
    """Electric motors: constant torque below peak-power speed, constant power above."""
    wheel_radius_m: float
    """Rolling radius (m)."""
    driveline_efficiency: float
    """Fraction of engine power reaching the contact patches."""
    wheelbase_m: float
    """Axle to axle (m)."""
    front_weight_frac: float
    """Static fraction of the weight on the front axle."""
    cg_height_m: float
    """Centre of gravity above the ground (m), for longitudinal load transfer."""
    length_m: float
    """Body length (m), for contacts and rendering."""
    width_m: float
    """Body width (m)."""
    height_m: float
    """Body height (m)."""
    cda_m2: float
    """Drag coefficient times frontal area (m^2)."""
    cla_m2: float
    """Lift (downforce) coefficient times area (m^2)."""
    aero_front_frac: float
    """Fraction of the downforce on the front axle."""
    brake_max_g: float
    """Brake force capacity as a multiple of the car's weight (the tyres limit it further)."""
    brake_front_frac: float
    """Brake balance: fraction of the brake force on the front axle."""
    max_steer_deg: float
    """Largest road-wheel steering angle (deg)."""
    public_0_100_s: float | None
    """Published 0-100 km/h time (s), None if none is published."""
    public_top_speed_kmh: float | None
    """Published top speed (km/h), None if none is published."""
    sources: str
    """Where the public figures come from."""

    @property
    def tire_grip(self) -> float:
        return TIRE_GRIP[self.tire]

    @property
    def yaw_inertia_kgm2(self) -> float:
        """Yaw moment of inertia: a uniform box, concentrated a little towards the centre."""
        return 0.9 * self.mass_kg * (self.length_m ** 2 + self.width_m ** 2) / 12.0


CARS = {
    "audi_tt_cup_16": CarSpec(
        name="audi_tt_cup_16", display_name="Audi TT Cup '16", drivetrain="FWD",
        front_drive_share=1.0, tire="racing_hard",
        mass_kg=1125.0, power_kw=228.0, peak_power_rpm=6000.0, redline_rpm=6800.0,
        launch_rpm=3500.0, gear_ratios=(3.00, 2.05, 1.55, 1.23, 1.00, 0.84), final_drive=3.40,
        electric=False, wheel_radius_m=0.33, driveline_efficiency=0.90,
        wheelbase_m=2.505, front_weight_frac=0.60, cg_height_m=0.45,
        length_m=4.18, width_m=1.95, height_m=1.30,
        cda_m2=0.68, cla_m2=0.90, aero_front_frac=0.40,
        brake_max_g=1.6, brake_front_frac=0.75, max_steer_deg=20.0,
        public_0_100_s=4.6, public_top_speed_kmh=300.0,
        sources="Audi Sport (2014): 228 kW (310 hp) 2.0 TFSI, 1,125 kg, front-wheel drive, six-speed "
                "S tronic. 0-60 mph 4.4 s and 186 mph are topspeed.com's estimates, not Audi's.",
    ),
    "alfa_romeo_4c_14": CarSpec(
        name="alfa_romeo_4c_14", display_name="Alfa Romeo 4C Launch Edition '14", drivetrain="RWD",
        front_drive_share=0.0, tire="sports_medium",
        mass_kg=975.0, power_kw=177.0, peak_power_rpm=6000.0, redline_rpm=6500.0,
        launch_rpm=3500.0, gear_ratios=(3.55, 2.24, 1.61, 1.25, 0.98, 0.80), final_drive=3.56,
        electric=False, wheel_radius_m=0.33, driveline_efficiency=0.90,
        wheelbase_m=2.38, front_weight_frac=0.40, cg_height_m=0.42,
        length_m=3.99, width_m=1.87, height_m=1.18,
        cda_m2=0.66, cla_m2=0.15, aero_front_frac=0.45,
        brake_max_g=1.5, brake_front_frac=0.65, max_steer_deg=20.0,
        public_0_100_s=4.5, public_top_speed_kmh=258.0,
        sources="Alfa Romeo (2013): 177 kW (240 hp) 1750 TBi, 350 Nm, 895 kg dry (we add 80 kg of "
                "fluids and driver), mid-engine rear-wheel drive, TCT six-speed, 0-100 km/h 4.5 s, "
                "258 km/h, 1.1 g lateral, 1.25 g braking.",
    ),
    "hyundai_n_2025_vgt_gr1": CarSpec(
        name="hyundai_n_2025_vgt_gr1", display_name="Hyundai N 2025 Vision Gran Turismo (Gr.1)",
        drivetrain="AWD", front_drive_share=0.45, tire="racing_medium",
        mass_kg=972.0, power_kw=650.0, peak_power_rpm=5000.0, redline_rpm=15000.0,
        launch_rpm=0.0, gear_ratios=(1.0,), final_drive=4.60,
        electric=True, wheel_radius_m=0.34, driveline_efficiency=0.92,
        wheelbase_m=2.70, front_weight_frac=0.45, cg_height_m=0.32,
        length_m=4.60, width_m=2.00, height_m=1.10,
        cda_m2=1.10, cla_m2=3.00, aero_front_frac=0.42,
        brake_max_g=2.5, brake_front_frac=0.68, max_steer_deg=20.0,
        public_0_100_s=None, public_top_speed_kmh=340.0,
        sources="Hyundai (IAA 2015): 650 kW hydrogen fuel cell (500 kW) plus super capacitor (150 kW), "
                "four in-wheel motors, 972 kg. No acceleration figure is published; 340 km/h is the "
                "top speed the paper (IV-A) reports on Sarthe.",
    ),
}

CAR_NAMES = tuple(CARS)


def get_car(name: str) -> CarSpec:
    """The :class:`CarSpec` called ``name``; raises ``ValueError`` naming the valid ones."""
    key = str(name).lower()
    if key not in CARS:
        raise ValueError(f"unknown car {name!r}; valid cars: {', '.join(CAR_NAMES)}")
    return CARS[key]
