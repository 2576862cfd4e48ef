"""Mutation check for SIPRAD's joint mode (issue 8 §3/§5: ltem/joint.py and its lines in siprad.py).
Each one-line mutation in a COPY of src/ (PYTHONPATH), only the joint tests; prints CAUGHT/survived
per mutation and the count. Mutation 3 (the defocus sign flipped in the call to the detector) is
equivalent: the detector checks only that the defocus is non-zero.

    python scripts/mutation_check_ltem_joint.py [index ...]
"""
from mutation_runner import main

T = ["tests/test_ltem_joint.py", "tests/test_ltem_magnitudes.py", "-k", "joint"]
J, S = "src/napari_phase/ltem/joint.py", "src/napari_phase/ltem/siprad.py"
M = [
 ("joint amplitude forced to all ones", S, "        amp = joint.final_amplitude(amp)\n", "        amp = np.ones_like(amp)\n", T),
 ("detector seed dropped (no particles)", J,
  "    return suggest_contaminant_mask(image, pixel_size_nm=pixel_size_nm, defocus_nm=defocus_nm, voltage_kv=voltage_kv)\n",
  "    return np.zeros(np.shape(image), bool)\n", T),
 ("defocus sign flipped in the SIPRAD model", S, "    mic = Microscope(voltage_kv=kv, defocus_nm=df,", "    mic = Microscope(voltage_kv=kv, defocus_nm=-df,", T),
 ("defocus sign flipped in the joint path only (detector call)", S,
  "                joint = JointAmplitude(frame, pixel_size_nm=problem.pixel_size_nm, defocus_nm=mic.defocus_nm,",
  "                joint = JointAmplitude(frame, pixel_size_nm=problem.pixel_size_nm, defocus_nm=-mic.defocus_nm,", T),
 ("start level = flux ratio (no square root)", J, "    return math.sqrt(float(np.clip(ratio, 1e-4, 0.98)))", "    return float(np.clip(ratio, 1e-4, 0.98))", T),
 ("projection drops every particle", J, "(self.levels() < 1.0 - self.min_contrast)", "(self.levels() > 1.0 - self.min_contrast)", T),
 ("levels not fitted (stay at the start)", J, '        return [{"params": [self.z], "lr": float(level_learning_rate)}]', '        return [{"params": [self.z], "lr": 0.0}]', T),
 ("start phase without the detector mask", J,
  "        return dataclasses.replace(problem, mask=self.seed.copy()) if self.seed.any() else problem", "        return problem", T),
 ("final level squared (A² for A)", J, "            out[on] = level\n", "            out[on] = level * level\n", T),
 ("final amplitude keeps dropped particles", J, "        on = self.kept()[self.labels_np]\n", "        on = (self.labels_np > 0)\n", T),
]

if __name__ == "__main__":
    main(M, tag="joint")
