"""Colours shared by every plot: the Okabe–Ito colour-blind-safe palette and one colour per error.

A leaf module (no imports), so that the analysis modules that draw their own figures
(:mod:`hackrisk.analysis.bayesian`, :mod:`hackrisk.analysis.prospective`) and
:mod:`hackrisk.plots` share colours without importing each other.
"""

#: The Okabe–Ito colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: Colour of each error type (and of correct conclusions / the pooled risk).
ERROR_COLORS = {
    "correct": OKABE_ITO["green"], "Type I": OKABE_ITO["orange"], "Type II": OKABE_ITO["sky_blue"],
    "Type S": OKABE_ITO["vermillion"], "risk": OKABE_ITO["blue"], "human": OKABE_ITO["black"],
}
