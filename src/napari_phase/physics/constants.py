"""Physical constants (CODATA 2018, SI) and derived values in the project's units."""

PLANCK_J_S = 6.62607015e-34  # h
HBAR_J_S = PLANCK_J_S / (2 * 3.141592653589793)
ELECTRON_MASS_KG = 9.1093837015e-31  # m0
ELEMENTARY_CHARGE_C = 1.602176634e-19  # e
SPEED_OF_LIGHT_M_S = 299792458.0  # c

#: hbar/e in T·nm² (658.2 T·nm²): B·t [T·nm] = (hbar/e) · dphi/dx [rad/nm].
HBAR_OVER_E_T_NM2 = HBAR_J_S / ELEMENTARY_CHARGE_C * 1e18
#: e/hbar in rad/(T·nm²).
E_OVER_HBAR_PER_T_NM2 = 1.0 / HBAR_OVER_E_T_NM2
