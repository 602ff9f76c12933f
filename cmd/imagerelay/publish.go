package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/goccy/go-yaml"
	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/config"
)

func newPublish(g *globals) *cobra.Command {
	var (
		files []string
		img   events.ImagePublished
		tags  map[string]string
		url   string
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish an image.published event (from flags, or from JSON/YAML files)",
		Example: `  imagerelay publish --file samples/tencent-web.yaml
  imagerelay publish --provider tencent --image-id img-demo0002 --source-region ap-guangzhou --tag env=prod`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			var images []events.ImagePublished
			for _, f := range files {
				raw, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				got, err := parseImages(f, raw)
				if err != nil {
					return err
				}
				images = append(images, got...)
			}
			if len(files) == 0 {
				img.Tags = tags
				images = append(images, img)
			}
			nc, err := compose.Dial(cfg, natsURL(cfg, url), "imagerelay-publish")
			if err != nil {
				return err
			}
			defer nc.Close()
			b, err := bus.Bind(cmd.Context(), nc, compose.BusConfig(cfg), nil)
			if err != nil {
				return err
			}
			for _, im := range images {
				e, err := newPublished(im)
				if err != nil {
					return err
				}
				if err := b.Publish(cmd.Context(), e); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s %s/%s/%s (id %s)\n", events.TypeImagePublished, im.Provider, im.SourceRegion, im.ImageID, e.ID())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "file", "f", nil, "JSON or YAML file with one image (or a list); repeatable")
	f.StringVar(&img.Provider, "provider", "", "alibaba, tencent or huawei")
	f.StringVar(&img.ImageID, "image-id", "", "the provider's image id")
	f.StringVar(&img.VersionID, "version-id", "", "image version (Alibaba iv-...)")
	f.StringVar(&img.ImageName, "name", "", "image name")
	f.StringVar(&img.SourceRegion, "source-region", "", "region that holds the image")
	f.StringVar(&img.ProductType, "product-type", "", "Alibaba product type: CloudDesktop, CloudApp or WuyingServer")
	f.StringVar(&img.Account, "account", "", "account label")
	f.IntVar(&img.SizeGB, "size-gb", 0, "image size in GiB")
	f.BoolVar(&img.Encrypted, "encrypted", false, "the image is encrypted")
	f.StringVar(&img.OSType, "os-type", "", "Windows or Linux")
	f.StringSliceVar(&img.Regions, "regions", nil, "only these destinations (must be allowed by a policy)")
	f.StringToStringVar(&tags, "tag", nil, "image tag key=value; repeatable")
	f.StringVar(&url, "nats", "", "NATS URL (default: nats.url, else the local `imagerelay up`)")
	return cmd
}

// natsURL picks the NATS to talk to from outside a running stack.
func natsURL(cfg *config.Config, flag string) string {
	switch {
	case flag != "":
		return flag
	case cfg.NATS.URL != "":
		return cfg.NATS.URL
	}
	if addr, ok := cfg.NATS.ListenAddr(); ok {
		return "nats://" + addr
	}
	return "nats://127.0.0.1:4222"
}

// parseImages reads one image.published payload, or a list of them, from JSON or YAML.
// Unknown fields are errors, so a typo does not silently drop a setting.
func parseImages(name string, raw []byte) ([]events.ImagePublished, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", name, yaml.FormatError(err, false, true))
	}
	js = bytes.TrimSpace(js)
	if len(js) > 0 && js[0] != '[' {
		js = append(append([]byte{'['}, js...), ']')
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var out []events.ImagePublished
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: not an image.published payload: %w", name, err)
	}
	return out, nil
}

// newPublished builds and validates an image.published event.
func newPublished(img events.ImagePublished) (ev event.Event, err error) {
	ev, err = events.New(events.TypeImagePublished, img, events.Meta{
		ID:       uuid.NewString(),
		Source:   "/imagerelay/cli",
		Provider: img.Provider,
		Region:   img.SourceRegion,
		ImageID:  img.ImageID,
	})
	if err != nil {
		return ev, fmt.Errorf("%w (see events/schemas/image.published.v1.json)", err)
	}
	return ev, nil
}

// sampleImages returns every shipped sample.
func sampleImages(fsys fs.FS) ([]events.ImagePublished, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []events.ImagePublished
	for _, n := range names {
		raw, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		imgs, err := parseImages("samples/"+n, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	return out, nil
}
