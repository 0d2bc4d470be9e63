"""ppvi: a compiler from generative models to mean-field variational inference.

Pipeline (each stage a subpackage, plain data between them)::

    text --language--> checked AST --graph--> factor graph --derive--> updates --codegen--> kernels --infer--> q
"""

__version__ = "0.1.0"
