"""Plotting functions run and draw what they say (the notebooks' widgets call these)."""

import matplotlib.pyplot as plt
import numpy as np

from handpose_utils import load_freihand, plots
from handpose_utils.images import read_image


def test_draw_hand_draws_20_bones_and_hollow_hidden_joints():
    fig, ax = plt.subplots()
    kp = np.random.default_rng(0).uniform(0, 200, (21, 2))
    vis = np.ones(21, bool)
    vis[[3, 7]] = False
    plots.draw_hand(ax, kp, vis)
    assert len(ax.lines) == 20
    filled, hollow = ax.collections
    assert len(filled.get_offsets()) == 19 and len(hollow.get_offsets()) == 2
    plt.close(fig)


def test_sample_figures(synthetic_root):
    recs = load_freihand(synthetic_root)
    ax = plots.show_sample(recs[0], pred=np.array(recs[0]["keypoints"]) + 3)
    assert len(ax.lines) == 40 and ax.images  # GT and prediction skeletons on the image
    figs = [plots.show_grid(recs[:5], cols=3), plots.dataprep.show_versions(recs, 2),
            plots.dataprep.show_projection(read_image(recs[1]["image_path"]), recs[1]["xyz"],
                                           recs[1]["K"]),
            plots.splits.plot_split_distributions({"a": recs[:12], "b": recs[12:]})]
    assert len(figs[1].axes) == 4
    assert np.all(plots.splits.hand_size(recs) > 30)
    plt.close("all")


def test_browser_builds(synthetic_root):
    recs = load_freihand(synthetic_root)
    shown = []
    # None, so a notebook cell ending with the browser prints no "<function ...>" line; the
    # slider draws the first record at once
    assert plots.sample_browser(recs, show=lambda rec: shown.append(rec["image_path"])) is None
    assert shown == [recs[0]["image_path"]]
    plt.close("all")
