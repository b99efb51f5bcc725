"""The domain rules several services share, written once: whether a target only reduces
exposure, the signed position from fills, a market's tick and step grid, the newest price
per market, bounded de-duplication and marked equity. Pure: imports only proto."""
