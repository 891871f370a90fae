"""The GivEnergy EV charger (GivEVC) on its own Modbus TCP link: connection, snapshots, controls,
charging policy, coordinator, simulator and discovery probe. Its register map is data in
:mod:`givtcp_async.registers.evc`.

May import: each module from its own floor down (tests/test_layers.py): the connection and
snapshots as the inverter's reading does, the controls and policy as control does, the
coordinator as the inverter's coordinator does; the simulator and probe as tools.
"""
