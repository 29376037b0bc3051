"""The batched racing simulator: tracks, cars, physics, the built-in AI and rendering.

``core`` holds the state, the parameters and the pure ``step``; ``biai`` the built-in AI; ``render``
the ego camera; ``topdown`` the maps; ``race`` whole races. Submodules are imported on use.
"""
