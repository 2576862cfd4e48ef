"""Mutation checks for the series registration (ltem/series_register.py) and the phi_e options
(ltem/phase_e_prior.py, derivative_e): each mutation is patched in, four tests of
tests/test_ltem_series.py are run, and a mutation counts as caught when one fails.

    python scripts/mutation_check_ltem_series_drift.py     (about 6 min on 2 busy cores)
"""
import sys, traceback, numpy as np, torch
from unittest import mock
torch.set_num_threads(1)
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1] / 'tests'))
import test_ltem_series as T
import napari_phase.ltem.series_register as R
import napari_phase.ltem.phase_e_prior as P
import napari_phase.ltem.series as S
import napari_phase.ltem.align as A
from napari_phase.ltem.simulate_series import simulate_flipped_series
noisy = simulate_flipped_series("skyrmions", (128, 128), defocus_nm=T.Z5, noise=0.1, n_contaminants=6, flip_rotation_deg=3.0, flip_shift_px=(4.0, -6.0), seed=0)
tests = [("drift", T.test_sub_2px_drift_is_recovered_by_registering_to_the_model, ()),
         ("driftfree", T.test_drift_free_series_stays_in_place_and_fit_shift_is_unbiased, ()),
         ("prior", T.test_phase_e_prior_restores_the_shrunk_long_wavelengths, ()),
         ("target", T.test_target_case_with_the_defaults_meets_phim_and_b_magnitude, (noisy,))]
orig_fit, orig_fs, orig_model, orig_prior, orig_split, orig_reg = R.fit_shift, R.fourier_shift, R.model_series, P.amplitude_prior, P._split, R.register_series_to_model
def zero_reg(stack, z, px, **kw):
    return np.zeros((stack.shape[0], 2)), {"rounds": 0, "last_change_px": 0.0}
def neg_fit(*a, **k):
    y, x = orig_fit(*a, **k); return -y, -x
def fs_flip(image, shift_yx):
    return orig_fs(image, (-shift_yx[0], -shift_yx[1]))
def model_negz(phase, i0, z, px, kv):
    return orig_model(phase, i0, -np.asarray(z), px, kv)
def split_neg(a, px, qc):
    h, l = orig_split(a, px, qc); return h, -l
def prior_double(pe, i0, px, qc):
    out, info = orig_prior(pe, i0, px, qc)
    if info.get("used"):
        out = out + (out - pe)  # twice the restored part
    return out, info
def prior_plus_log(pe, i0, px, qc):
    return orig_prior(pe, 1.0 / np.maximum(np.asarray(i0, float), 1e-6) * float(np.median(i0)) ** 2, px, qc)
def no_gauge(stack, z, px, **kw):
    with mock.patch.object(R, "fit_shift", lambda mov, ref, start=(0.0, 0.0), **k: (0.0, 0.0) if k.get("smooth_px") else orig_fit(mov, ref, start, **k)):
        return orig_reg(stack, z, px, **kw)
def unmirror_other(stack, flip_axis):
    return orig_unmirror(stack, "y" if flip_axis == "x" else "x")
orig_unmirror = A.unmirror
mutations = [
    ("drift registration disabled (zero shifts)", [mock.patch.object(R, "register_series_to_model", zero_reg)]),
    ("fit_shift sign flipped", [mock.patch.object(R, "fit_shift", neg_fit)]),
    ("fourier_shift direction flipped", [mock.patch.object(R, "fourier_shift", fs_flip)]),
    ("model simulated at -z (defocus sign)", [mock.patch.object(R, "model_series", model_negz)]),
    ("in-focus gauge step skipped", [mock.patch.object(R, "register_series_to_model", no_gauge)]),
    ("phi_e prior: restored part subtracted", [mock.patch.object(P, "_split", split_neg)]),
    ("phi_e prior: restored part doubled", [mock.patch.object(S, "amplitude_prior", prior_double)]),
    ("phi_e prior: +ln A instead of -ln A", [mock.patch.object(S, "amplitude_prior", prior_plus_log)]),
    ("phi_e prior off", [mock.patch.object(S, "amplitude_prior", lambda pe, i0, px, qc: (np.asarray(pe, np.float32), {"used": False}))]),
    ("phi_e derivative least squares", [mock.patch.dict(S.tie_series_job.__kwdefaults__, {"derivative_e": "least_squares"})]),
    ("flip axis flipped in unmirror", [mock.patch.object(A, "unmirror", unmirror_other)]),
]
caught = 0
START=int(sys.argv[1]) if len(sys.argv)>1 else 0
for name, patches in mutations[START:]:
    failed = []
    for p in patches: p.start()
    try:
        for tname, fn, args in tests:
            try:
                fn(*args)
            except Exception as e:
                failed.append(f"{tname}: {type(e).__name__}")
    finally:
        for p in patches: p.stop()
    caught += bool(failed)
    print(f"{'CAUGHT' if failed else 'SURVIVED'}: {name} -> {failed}", flush=True)
print(f"caught {caught}/{len(mutations)}")
