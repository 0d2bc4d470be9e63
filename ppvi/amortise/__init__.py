"""Learned inference (the seed's 19.5, issue 19): ``amortise h by mlp(hidden = 64)`` in a model trains an
encoder from a data row to the natural parameters of the local q(h_n) along with the fit
(:mod:`ppvi.amortise.train`); ``result.predict(data, refine=k)`` starts the new data's local q from it and
runs k exact sweeps (:mod:`ppvi.infer.given`).  See docs/amortise.md.
"""

from ppvi.amortise.encoder import Encoder

__all__ = ["Encoder"]
