"""Control: one catalogue of functions, validated, planned, executed, verified and accounted for."""
