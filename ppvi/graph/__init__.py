"""Factor graph of a checked model (:mod:`.factor_graph`) and its views (:mod:`.render`)."""

from ppvi.graph.factor_graph import FactorGraph, FactorNode, Node, Plate, build

__all__ = ["FactorGraph", "FactorNode", "Node", "Plate", "build"]
