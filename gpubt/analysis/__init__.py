"""After the loop: postrun (the steps in order), competition (the builder auction), thresholds, sweep, validate
(against labeled MEV), metrics."""
