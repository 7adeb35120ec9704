
sockudo:deltamarketA?{"event":"price.update","delta":"NU0KMDBAMzMsMkY6In0=","seq":3}