//! The French pages in Debian's headless Chromium, driven by `tests/browser/journey.mjs`
//! (playwright-core and axe-core from npm, installed by `.ci/run` with `npm ci --prefix
//! tests/browser`): no horizontal scroll at 390 and 1280 px, 0 axe-core violations on every page
//! kind, and a mairie's whole journey through the forms (sign in, declare, give feedback, sign
//! out), checked afterwards in the store. Screenshots go to the cargo target folder. Without
//! Chromium or node_modules the test is skipped locally and fails in CI.

mod common;

use std::path::{Path, PathBuf};

use voisinage::core::domain::{InseeCode, Slug};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

#[tokio::test]
async fn pages_on_a_phone_and_a_desktop_and_a_mairie_journey() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let ready =
        Path::new("/usr/bin/chromium").exists() && scripts.join("node_modules/playwright-core").exists() && scripts.join("node_modules/axe-core").exists();
    if !ready {
        assert!(std::env::var("CI").is_err(), "CI must install chromium and run `npm ci --prefix tests/browser` (see .ci/run)");
        eprintln!("skipped: needs /usr/bin/chromium and `npm ci --prefix tests/browser`");
        return;
    }
    let app = common::spawn(true).await;
    let commune = InseeCode::parse("29195").unwrap();
    // The first category with a product that Plouguerneau does not run, released by 8 October
    // 2024 (its first generation), declared as in service since then.
    let day = chrono::NaiveDate::from_ymd_opt(2024, 10, 8).unwrap();
    let (category, option) = app.service.with_ctx(|ctx| {
        ctx.catalog
            .categories
            .iter()
            .find_map(|c| {
                let p = ctx.catalog.products_in(&c.slug).find(|p| {
                    !p.component
                        && ctx.index.active(&commune, &c.slug, ctx.today).all(|a| a.product != p.id)
                        && p.generations.first().is_none_or(|g| g.released.is_some_and(|r| r <= day))
                })?;
                let option = match p.generations.first() {
                    Some(g) => format!("{}/{}", p.id, g.id),
                    None => format!("{}/", p.id),
                };
                Some((c.slug.clone(), option))
            })
            .unwrap()
    });
    eprintln!("declaring {option} in {category}");
    let code = app.token("commune:29195");
    let out = target_dir().join("screenshots");
    std::fs::create_dir_all(&out).unwrap();
    let base = app.base.clone();
    let (cat, opt, o, c) = (category.to_string(), option.clone(), out.clone(), code.clone());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(scripts.join("journey.mjs"))
            .env("VSN_BASE", base)
            .env("VSN_CODE", c)
            .env("VSN_COMMUNE", "29195")
            .env("VSN_EPCI", "242900553")
            .env("VSN_CATEGORY", cat)
            .env("VSN_OPTION", opt)
            .env("VSN_OUT", o)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&run.stderr)));
    assert!(r.get("error").is_none(), "the browser run failed: {}", r["error"]);

    // No horizontal scroll on any page, on a phone or a desktop.
    let widths = r["widths"].as_array().unwrap();
    assert_eq!(widths.len(), 10, "5 pages x 2 widths");
    for w in widths {
        assert_eq!(w["status"], 200, "{w}");
        assert!(w["scrollWidth"].as_u64().unwrap() <= w["width"].as_u64().unwrap(), "horizontal scroll: {w}");
    }
    // 0 accessibility violations on each page kind (and the commune page with its forms open).
    for kind in ["accueil", "recherche", "commune", "epci", "connexion", "commune_forms"] {
        let v = r["axe"][kind].as_array().unwrap_or_else(|| panic!("no axe result for {kind}"));
        assert!(v.is_empty(), "axe-core on {kind}: {}", serde_json::to_string_pretty(v).unwrap());
    }

    // Printed (A4 PDF in the target folder): no header, footer nor forms; the map and tables.
    let p = &r["print"];
    assert_eq!(
        (p["header"].as_str(), p["footer"].as_str(), p["forms"].as_u64(), p["map"].as_str()),
        (Some("none"), Some("none"), Some(0), Some("block")),
        "{p}"
    );
    assert!(p["tables"].as_u64().unwrap() >= 2, "{p}");
    assert!(std::fs::metadata(out.join("page-epci.pdf")).map(|m| m.len()).unwrap_or(0) > 20_000);

    // The journey.
    let j = &r["journey"];
    assert_eq!(j["after_sign_in"], "/communes/29195");
    assert!(j["signed_in_as"].as_str().unwrap().contains("Connecté : commune de Plouguerneau"));
    assert_eq!(j["cookie"]["httpOnly"], true);
    assert_eq!(j["cookie"]["secure"], true);
    assert_eq!(j["cookie"]["sameSite"], "Strict");
    assert_eq!(j["cookie"]["length"], 66, "a session id, not the access code");
    assert_eq!(j["document_cookie"], "", "scripts cannot read the session cookie");
    assert_eq!(j["after_declare"], "Déclaration enregistrée.");
    assert!(j["forms_scroll_width"].as_u64().unwrap() <= 390);
    assert_eq!(j["after_feedback"], "Avis enregistré. Merci : il aide les communes voisines.");
    assert_eq!(j["after_sign_out"], "/?deconnecte=1");
    assert_eq!(j["sign_out_notice"], "Déconnexion effectuée.");
    assert_eq!(j["cookie_after"], false);

    // What the forms wrote, read back from the service.
    let views = app.service.adoptions_of(None, &commune).unwrap();
    let cat = Slug::parse(category.as_str()).unwrap();
    let mine: Vec<_> = views.iter().filter(|v| v.adoption.category == cat && !v.adoption.simulated).collect();
    assert_eq!(views.iter().filter(|v| !v.adoption.simulated).count(), 1, "one adoption declared");
    assert_eq!(mine.len(), 1);
    let a = &mine[0].adoption;
    let (product, generation) = option.split_once('/').unwrap();
    assert_eq!(a.product.as_str(), product);
    assert_eq!(a.generation.as_ref().map(|g| g.as_str()).unwrap_or(""), generation);
    assert_eq!((a.since.to_string(), a.workstations), ("2024-10-08".to_string(), Some(3)));
    let f = &mine[0].feedback;
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].reliability, f[0].incidents, f[0].downtime_hours, f[0].support), (4, 1, 1.5, 5));
    for name in ["page-commune-390.png", "page-epci-1280.png", "page-commune-forms-390.png"] {
        assert!(std::fs::metadata(out.join(name)).map(|m| m.len()).unwrap_or(0) > 10_000, "{name}");
    }
    eprintln!("screenshots in {}", out.display());
}
