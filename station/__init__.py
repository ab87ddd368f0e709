"""Station controller: the filling-rig interlock and record keeper."""

__version__ = "0.1.0"
