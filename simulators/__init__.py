"""The pretend world gridwatch is tested against: feeders, AMI, faults, crews, replay, scoring."""

from simulators._ami import AmiParams, CommBlackout, TelemetryGenerator
from simulators._errors import RecordingError, SimulatorError, UnknownScenario
from simulators._feeder import (
    SimGrid,
    check_radial,
    generate_feeder,
    generate_grid,
    toy_feeder,
    toy_grid,
)
from simulators._grid_import import (
    ImportedNetwork,
    NetworkImportError,
    import_pandapower,
    import_pandapower_net,
    load_published_network,
    load_published_network_detailed,
    published_network_names,
)
from simulators._messages import SimMessage
from simulators._publish import PublishStats, publish_stream
from simulators._recording import Recording, RecordStats, write_recording
from simulators._scenario import (
    Scenario,
    Simulation,
    list_scenarios,
    load_scenario,
    simulation_on_network,
)
from simulators._truth import GroundTruth, TruthOutage
from simulators._world import (
    CrewParams,
    FaultRates,
    PlannedOutage,
    ScriptedFault,
    Storm,
    WorldParams,
    simulate_world,
)

__all__ = [
    "AmiParams",
    "CommBlackout",
    "CrewParams",
    "FaultRates",
    "GroundTruth",
    "ImportedNetwork",
    "NetworkImportError",
    "PlannedOutage",
    "PublishStats",
    "RecordStats",
    "Recording",
    "RecordingError",
    "Scenario",
    "ScriptedFault",
    "SimGrid",
    "SimMessage",
    "Simulation",
    "SimulatorError",
    "Storm",
    "TelemetryGenerator",
    "TruthOutage",
    "UnknownScenario",
    "WorldParams",
    "check_radial",
    "generate_feeder",
    "generate_grid",
    "import_pandapower",
    "import_pandapower_net",
    "list_scenarios",
    "load_published_network",
    "load_published_network_detailed",
    "load_scenario",
    "publish_stream",
    "published_network_names",
    "simulate_world",
    "simulation_on_network",
    "toy_feeder",
    "toy_grid",
    "write_recording",
]
