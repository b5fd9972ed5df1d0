"""The models this project trained and ships, and the checkpoint catalog, installed as
``translator.shipped`` and read with ``importlib.resources`` (see ``translator.catalog``)."""
