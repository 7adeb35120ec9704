
'sockudo_internal:subscription_succeededpresence-roomZ
X{"presence":{"ids":["10","11"],"hash":{"10":{"name":"Mr. Channels"},"11":{}},"count":2}}