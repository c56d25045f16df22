"""Qt-free core: images, studies, hanging, viewport state and display maths."""
