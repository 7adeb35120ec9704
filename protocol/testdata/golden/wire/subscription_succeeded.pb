
'sockudo_internal:subscription_succeededprivate-orders
{}