"""The notebook front: the extension, settings, the %%chat magics and their cell runner, the
panel and the explorer widgets. Thin: they parse, call the layers below, display.
"""
