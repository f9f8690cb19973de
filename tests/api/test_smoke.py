from tests.support.server import Api, hello_manifest


def test_deploy_promotes_into_production(api: Api) -> None:
    body = api.deploy(hello_manifest())
    chain_id = body["chain_id"]
    deployment_id = body["chain_deployment"]["id"]
    env = api.wait_current(chain_id, deployment_id)
    assert env["current_deployment"]["status"] == "ACTIVE"
    assert {s["chainlet_name"] for s in env["chainlet_settings"]} == {"HelloWorld", "RandInt"}
