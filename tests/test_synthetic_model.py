"""The synthetic generator's parts: face model, ESIM kernel, PLY files and the scan corpus."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from facemorphic import ACTION_UNITS, FACIAL_ACTION_UNITS
from facemorphic.cli import main
from facemorphic.synthetic.esim import LOG_EPS, EventSimulator
from facemorphic.synthetic.face import (
    ASTRONAUT_LANDMARKS_PX,
    face_model,
    photo_to_template,
    pose_vertices,
    posed_vertices,
)
from facemorphic.morphable.meshio import read_ply, write_ply


def _facial(**intensity) -> np.ndarray:
    a = np.zeros(len(FACIAL_ACTION_UNITS))
    for name, value in intensity.items():
        a[FACIAL_ACTION_UNITS.index(int(name[2:]))] = value
    return a


def test_template_follows_flame_conventions_and_the_photo_landmarks():
    model = face_model()
    assert 3000 <= model.n_vertices <= 8000 and len(model.faces) > 5000
    np.testing.assert_allclose(model.lmk_b_coords.sum(1), 1.0)
    lm = model.landmarks(model.template)
    # the embedding puts each landmark where the photograph has it (template xy), nose tip in front
    np.testing.assert_allclose(lm[:, :2], photo_to_template(ASTRONAUT_LANDMARKS_PX), atol=1e-9)
    assert lm[30, 2] == pytest.approx(model.template[:, 2].max(), abs=0.01)
    assert lm[36, 0] < 0 < lm[45, 0]  # subject's right eye at -x
    assert np.linalg.norm(lm[36] - lm[45]) == pytest.approx(0.092, abs=0.005)  # metres
    assert lm[19, 1] > lm[30, 1] > lm[8, 1]  # +y up


def test_au_fields_are_local_and_follow_facs():
    model = face_model()
    neutral = model.landmarks(model.shape(np.zeros(12), _facial()))

    def moved(**au):
        return model.landmarks(model.shape(np.zeros(12), _facial(**au))) - neutral

    d = moved(au12=1.0)  # lip corner puller: corners out and up, brows still
    assert d[48, 1] > 0.003 and d[54, 1] > 0.003 and d[48, 0] < -0.003 and d[54, 0] > 0.003
    assert np.abs(d[17:27]).max() < 0.0005
    d = moved(au1=1.0)  # inner brow raiser: inner brows up more than outer ones, mouth still
    assert d[21, 1] > 0.005 and d[21, 1] > 2 * d[17, 1]
    assert np.abs(d[48:68]).max() < 0.0005
    d = moved(au4=1.0)  # brow lowerer: down and together
    assert d[21, 1] < -0.003 and d[21, 0] > 0 > d[22, 0]
    d = moved(au26=1.0)  # jaw drop: chin and lower lip down, upper lip still
    assert d[8, 1] < -0.005 and d[57, 1] < -0.005 and abs(d[51, 1]) < 0.001
    closed = neutral + moved(au43=1.0)  # eyes closed: upper lids come down onto the lower lids
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):
        opening = neutral[up, 1] - neutral[low, 1]
        assert opening > 0.004
        assert abs(closed[up, 1] - closed[low, 1]) < 0.15 * opening
        assert abs(d_low := closed[low, 1] - neutral[low, 1]) < 0.0005, d_low
    np.testing.assert_array_equal(model.au_basis[..., FACIAL_ACTION_UNITS.index(43)],
                                  model.au_basis[..., FACIAL_ACTION_UNITS.index(45)])


def test_head_pose_conventions_and_fast_posing():
    model = face_model()
    nose = model.landmarks(model.template)[30]
    for pose, axis, sign in (((20, 0, 0), 0, +1), ((0, 15, 0), 1, +1), ((0, 0, 15), 0, +1)):
        posed = model.landmarks(pose_vertices(model, model.template, np.array(pose, float), np.zeros(3)))[30]
        # yaw > 0 turns to the subject's left (+x); pitch > 0 lifts the nose; roll > 0 tilts the head (and
        # the nose, above the neck pivot) towards the subject's left (+x)
        assert sign * (posed[axis] - nose[axis]) > 0.005, pose
    rng = np.random.default_rng(0)
    au = rng.uniform(0, 1, (4, len(ACTION_UNITS)))
    pose, trans, identity = rng.normal(0, 10, (4, 3)), rng.normal(0, 0.01, (4, 3)), rng.normal(size=12)
    from facemorphic.synthetic.face import FACIAL_CLASS_INDEX

    slow = np.stack([pose_vertices(model, model.shape(identity, au[k, FACIAL_CLASS_INDEX]), pose[k], trans[k])
                     for k in range(4)])
    np.testing.assert_allclose(posed_vertices(model, identity, au, pose, trans), slow, atol=1e-12)
    neck_bottom = model.head_weight == 0
    assert neck_bottom.any()
    np.testing.assert_allclose(slow[:, neck_bottom], model.shape(identity, au[:, FACIAL_CLASS_INDEX])[:, neck_bottom])


def _esim_reference(l_prev, l_new, ref, t_last, cp, cm, t0, dt, refractory):
    """The ESIM rule written out pixel by pixel, crossing by crossing (independent slow reference)."""
    events = []
    for y in range(l_new.shape[0]):
        for x in range(l_new.shape[1]):
            a, b = l_prev[y, x], l_new[y, x]
            while True:
                up = b - ref[y, x] >= cp[y, x]
                down = ref[y, x] - b >= cm[y, x]
                if not (up or down):
                    break
                level = ref[y, x] + (cp[y, x] if up else -cm[y, x])
                ref[y, x] = level
                frac = min(max((level - a) / (b - a), 0.0), 1.0) if b != a else 1.0
                t = t0 + frac * dt
                if t - t_last[y, x] >= refractory:
                    t_last[y, x] = t
                    events.append((int(np.floor(t)), x, y, int(up)))
    return sorted(events)


@pytest.mark.parametrize("refractory", [0.0, 400.0])
def test_esim_kernel_matches_the_pixel_by_pixel_rule(refractory):
    """Whole-window renders and region renders (pixels with their own sample times) give exactly the
    events of the pixel-by-pixel rule on the log intensities, also when the output arrays start too
    small and must grow, and when intensities land next to a pixel's crossing levels (where the kernel
    decides by the log alone)."""
    rng = np.random.default_rng(3)
    h, w = 9, 11
    cp_full, cm_full = rng.uniform(0.15, 0.3, (h + 4, w + 6)), rng.uniform(0.15, 0.3, (h + 4, w + 6))
    window = (6, 4, w, h)
    cp, cm = cp_full[4:, 6:], cm_full[4:, 6:]
    sim = EventSimulator(window, cp_full, cm_full, refractory)
    sim._alloc(3)  # far too small: every step has to grow the output arrays and resume

    def log_of(gray):
        return np.log(gray.astype(np.float64) + LOG_EPS)

    g0 = rng.uniform(0.05, 0.6, (h, w)).astype(np.float32)
    sim.step(g0, 0.0)
    ref_a, tl_a = log_of(g0), np.full((h, w), -np.inf)
    last_l, last_t = log_of(g0), np.zeros((h, w))
    expected = []
    for k in range(1, 10):
        rx, ry, rw, rh = (0, 0, w, h) if k % 3 == 0 else (2, 1, 5, 6)
        target = last_l[ry:ry + rh, rx:rx + rw] + rng.normal(0, 0.6, (rh, rw))
        if k > 6:  # land within float32 rounding of the next crossing, on either side
            area = (slice(ry, ry + rh), slice(rx, rx + rw))
            level = ref_a[area] + np.where(rng.random((rh, rw)) < 0.5, cp[area], -cm[area])
            target = level + rng.normal(0, 1e-7, (rh, rw))
        g1 = np.clip(np.exp(target) - LOG_EPS, 0.0, 1.0).astype(np.float32)
        l1 = log_of(g1)
        t1 = 1000.0 * k
        for y in range(rh):
            for x in range(rw):
                yy, xx = ry + y, rx + x
                expected += [(t, xx + 6, yy + 4, p) for t, _, _, p in _esim_reference(
                    last_l[yy:yy + 1, xx:xx + 1], l1[y:y + 1, x:x + 1], ref_a[yy:yy + 1, xx:xx + 1],
                    tl_a[yy:yy + 1, xx:xx + 1], cp[yy:yy + 1, xx:xx + 1], cm[yy:yy + 1, xx:xx + 1],
                    last_t[yy, xx], t1 - last_t[yy, xx], refractory)]
        last_l[ry:ry + rh, rx:rx + rw] = l1
        last_t[ry:ry + rh, rx:rx + rw] = t1
        sim.step(g1, t1, (rx, ry, rw, rh))
    got = [(int(e["t"]), int(e["x"]), int(e["y"]), int(e["p"])) for e in sim.take()]
    assert len(expected) > 100
    assert sorted(got) == sorted(expected)
    np.testing.assert_allclose(sim.ref, ref_a)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, binary):
    model = face_model()
    path = tmp_path / "mesh.ply"
    write_ply(path, model.template, model.faces, binary=binary)
    verts, faces = read_ply(path)
    np.testing.assert_allclose(verts, model.template, atol=1e-6)
    np.testing.assert_array_equal(faces, model.faces)


class _PlainUnpickler(pickle.Unpickler):
    """Only what a numpy array and plain containers need: what the 3DMM loaders will allow."""

    def find_class(self, module, name):
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "ndarray", "dtype", "_reconstruct"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} not allowed")


def _load(path):
    with open(path, "rb") as fh:
        return _PlainUnpickler(fh, encoding="latin1").load()


def test_scan_corpus_layouts_and_truth(tmp_path):
    out = tmp_path / "scans"
    assert main(["synth-corpus", "--out-dir", str(out), "--seed", "5", "--d3dfacs-subjects", "3",
                 "--sequences-per-subject", "2", "--frames-per-sequence", "4", "--vocaset-subjects", "2",
                 "--vocaset-sentences", "2", "--vocaset-frames", "5"]) == 0
    model = face_model()
    verts, faces = read_ply(out / "template.ply")
    np.testing.assert_allclose(verts, model.template, atol=1e-6)
    emb = _load(out / "landmark_embedding.pkl")
    assert emb["lmk_face_idx"].dtype == np.uint32 and emb["lmk_face_idx"].shape == (68,)
    assert emb["lmk_b_coords"].dtype == np.float64 and emb["lmk_b_coords"].shape == (68, 3)

    with h5py.File(out / "truth.h5", "r") as h5:
        n = model.n_vertices
        id_basis = h5["model/id_basis"][()]
        au_basis = h5["model/au_basis"][()]
        assert id_basis.shape == (3 * n, 12) and au_basis.shape == (3 * n, 18)
        subjects = sorted((out / "d3dfacs").iterdir())
        assert len(subjects) == 3
        for subject in subjects:
            identity = h5[f"subjects/{subject.name}/identity"][()]
            neutral = model.template + (id_basis @ identity).reshape(n, 3)
            sequences = sorted(subject.iterdir())
            assert len(sequences) == 2
            for seq in sequences:
                assert all(tok.isdigit() and int(tok) in ACTION_UNITS for tok in seq.name.split("+"))
                files = sorted(seq.glob("*.ply"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
                assert len(files) == 4 and all(p.stem.startswith(seq.name + "_") for p in files)
                truth = h5[f"d3dfacs/{subject.name}/{seq.name}"]
                np.testing.assert_array_equal([int(p.stem.rsplit("_", 1)[1]) for p in files], truth["frame_numbers"])
                offsets = truth["offsets"][()]
                assert np.abs(offsets[0]).max() == 0  # the first frame is neutral
                apex = int(np.argmax(np.abs(offsets).reshape(4, -1).max(1)))
                assert 0 < apex < 3
                for k, p in enumerate(files):
                    scan, _ = read_ply(p)
                    rot, trans = truth["rotation"][k], truth["translation"][k]
                    expected = (neutral + offsets[k]) @ rot.T + trans
                    residual = np.abs(scan - expected)
                    assert residual.max() < 0.0015 and residual.mean() < 0.0003  # scanner noise 0.2 mm
                au = truth["au_intensity"][()]
                from facemorphic.synthetic.face import FACIAL_CLASS_INDEX

                np.testing.assert_allclose(offsets, (au[:, FACIAL_CLASS_INDEX] @ au_basis.T).reshape(4, n, 3), atol=1e-6)

        data = np.load(out / "vocaset" / "data_verts.npy", mmap_mode="r")
        templates = _load(out / "vocaset" / "templates.pkl")
        index = _load(out / "vocaset" / "subj_seq_to_idx.pkl")
        assert data.dtype == np.float32 and data.shape == (2 * 2 * 5, n, 3)
        assert set(templates) == set(index) and len(templates) == 2
        for subject, sentences in index.items():
            identity = h5[f"subjects/{subject}/identity"][()]
            np.testing.assert_allclose(templates[subject], model.template + (id_basis @ identity).reshape(n, 3),
                                       atol=1e-6)
            for sentence, rows in sentences.items():
                truth = h5[f"vocaset/{subject}/{sentence}"]
                for frame, row in rows.items():
                    rot, trans = truth["rotation"][frame], truth["translation"][frame]
                    expected = (templates[subject] + truth["offsets"][frame]) @ rot.T + trans
                    np.testing.assert_allclose(data[row], expected, atol=1e-5)
