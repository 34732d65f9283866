"""The paper's published results (docs/model.md §8), keyed by (training setup, inference setup) names of
:mod:`memnp.experiments.registry`.

Median test error in per cent over 125 results (5 networks x 25 repeats), and the total power of
the two crossbars in watts where the paper gives it ("about").
"""

MEDIAN_ERROR = {
    ("ideal", "ideal"): 3.9,
    ("ideal", "low_pf"): 4.6, ("low_pf", "low_pf"): 4.3, ("low_pf_reg", "low_pf"): 4.1,
    ("ideal", "high_pf"): 41.6, ("high_pf", "high_pf"): 9.1, ("high_pf_reg", "high_pf"): 7.1,
    ("ideal", "stuck_off"): 7.5, ("stuck_off", "stuck_off"): 5.3,
    ("ideal", "high_pf_stuck_on"): 75.1, ("high_pf_stuck_on", "high_pf_stuck_on"): 11.9,
    ("ideal", "tahfo2"): 21.8, ("tahfo2", "tahfo2"): 6.8,
    ("ideal", "d2d_more"): 26.5, ("d2d_more", "d2d_more"): 7.2, ("d2d_more_reg", "d2d_more"): 6.7,
    ("ideal", "d2d_less"): 62.7, ("d2d_less", "d2d_less"): 5.4, ("d2d_less_reg", "d2d_less"): 6.1,
    ("ideal", "d2d_high"): 65.9, ("d2d_high", "d2d_high"): 14.1,
}

POWER = {
    ("ideal", "high_pf"): 1.6e-3, ("high_pf", "high_pf"): 3.4e-3, ("high_pf_reg", "high_pf"): 2.1e-3,
    ("ideal", "low_pf"): 1.11, ("low_pf", "low_pf"): 2.8, ("low_pf_reg", "low_pf"): 1.3,
}

#: Headline energy efficiencies (TOPS/W).
EFFICIENCY = {("ideal", "low_pf"): 0.715, ("high_pf_reg", "high_pf"): 381.0}

#: The rows of the table of docs/model.md §8: (label, inference setup, ideal training, aware, aware + regularised).
DIAGONAL = (
    ("software baseline (ideal inference)", "ideal", "ideal", None, None),
    ("SiOx low resistance", "low_pf", "ideal", "low_pf", "low_pf_reg"),
    ("SiOx high resistance", "high_pf", "ideal", "high_pf", "high_pf_reg"),
    ("stuck at G_off 5 %", "stuck_off", "ideal", "stuck_off", None),
    ("high PF + stuck at G_on 5 %", "high_pf_stuck_on", "ideal", "high_pf_stuck_on", None),
    ("Ta/HfO2 stuck distribution", "tahfo2", "ideal", "tahfo2", None),
    ("D2D more uniform", "d2d_more", "ideal", "d2d_more", "d2d_more_reg"),
    ("D2D less uniform", "d2d_less", "ideal", "d2d_less", "d2d_less_reg"),
    ("D2D high", "d2d_high", "ideal", "d2d_high", None),
)
