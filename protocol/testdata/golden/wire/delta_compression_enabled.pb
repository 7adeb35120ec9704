
!sockudo:delta_compression_enabledticker:8{"enabled":true,"algorithm":"fossil","channel":"ticker"}