"""The GivEnergy EV charger (GivEVC): register map, connection, controls, policy, simulator."""
