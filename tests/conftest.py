pytest_plugins = ["gearman.testing"]
