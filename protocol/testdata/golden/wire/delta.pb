
sockudo:deltamarket|z{"event":"price.update","delta":"NU0KMDBAMzMsMkY6In0=","seq":3,"algorithm":"fossil","conflation_key":"BTC","base_index":2}