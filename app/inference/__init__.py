"""Qt-free inference: model packages, networks, explanations and the runner."""
