"""Crossbar physics: mapping weights to conductances, nonidealities, stages, currents and power."""
from .mapping import (I_to_y, I_to_y_vjp, double_w_to_G, double_w_to_G_vjp, double_weights_matrix,
                      split_double_weights, standard_weights_matrix, w_to_G, w_to_G_vjp, x_to_V,
                      x_to_V_vjp)
from .pipeline import PHASES, Draws
from .simulate import CrossbarPass
from .stage import Stage

__all__ = ["x_to_V", "x_to_V_vjp", "w_to_G", "w_to_G_vjp", "double_w_to_G", "double_w_to_G_vjp",
           "I_to_y", "I_to_y_vjp", "double_weights_matrix", "split_double_weights",
           "standard_weights_matrix", "Stage", "CrossbarPass", "PHASES", "Draws"]
