//! The OpenAPI document describes exactly what the server serves.

use http::StatusCode;

use crate::support::*;

crate::both!(
    openapi_document_describes_served_routes,
    |backend| async move {
        let server = TestServer::start_on(backend, |_| {}).await;
        let r = server.api("GET", "/api/openapi.json", None, None).await;
        assert_eq!(r.status, StatusCode::OK);
        let doc = r.json;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 19, "{}", paths.len());
        for required in [
            "/api/auth/login",
            "/api/tunnels/{id}",
            "/api/domains/{id}/verify",
            "/api/analytics/tunnels/{id}",
            "/api/analytics/user",
        ] {
            assert!(paths.contains_key(required), "{required} missing");
        }
        // Every documented operation is served: without credentials it answers with
        // a documented status, never "no such API route" or 405.
        for (path, ops) in paths {
            let concrete = path.replace("{id}", "1").replace("{user_id}", "1");
            for (method, op) in ops.as_object().unwrap() {
                // A query parameter documented as a path parameter is never sent
                // where the server reads it (schemathesis found `limit` so).
                for param in op["parameters"].as_array().into_iter().flatten() {
                    let name = param["name"].as_str().unwrap();
                    if param["in"] == "path" {
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: `{name}` is documented in the path but is not in it"
                        );
                    }
                }
                let r = server
                    .api(&method.to_uppercase(), &concrete, None, None)
                    .await;
                assert!(
                    r.status != StatusCode::METHOD_NOT_ALLOWED
                        && r.message() != "no such API route",
                    "{method} {path} is not served: {r:?}"
                );
                let documented = op["responses"].as_object().unwrap();
                assert!(
                    documented.contains_key(r.status.as_str()),
                    "{method} {path} answered {} which is not documented",
                    r.status
                );
            }
        }
    }
);
