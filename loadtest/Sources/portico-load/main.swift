print("portico-load: not built yet")
