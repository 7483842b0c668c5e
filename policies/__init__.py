"""The aiinfra policy pack: rules over one resource or the whole stack, run by CrossGuard
(``pulumi preview --policy-pack policies``) or offline (``aiinfra check STACK``)."""
