"""The bottom layer: names, shapes, seeds and geometry that every other package shares.

Nothing here imports a simulator, a dataset library or torch; everything else may import it.
"""
