"""A live page of a run (``mhd-sim watch``): ``state`` reads the run directory as it grows,
``server`` serves the page (``page.html``, shipped with the package) on loopback."""
