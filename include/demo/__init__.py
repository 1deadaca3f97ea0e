"""Demo and test support, not part of the product: the synthetic vehicle-insurance data (``sample_data``,
``customers``), its MongoDB seeder (``seed``), the ``make demo`` driver (``demo``) and its ``summary``."""
